"""DrivingStack, the fixed-rate runtime, vehicle profiles and model export."""
