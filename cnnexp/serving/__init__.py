"""A trained run as a usable model: packaged with its preprocessing (TorchScript / torch.export),
logged as an MLflow pyfunc model, registered, served by MLflow, and `cnnexp predict`."""
