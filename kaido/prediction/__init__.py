"""Multi-agent multimodal forecasting, physics baselines and forecasting metrics."""
