"""Inference: the predictor (a config's test path at the original image size), output types,
the decode → predict → write pipeline shared by Test and Inference, outputs and webcam."""
