"""Camera and lidar encoders, BEV fusion, detection and BEV-segmentation heads."""
