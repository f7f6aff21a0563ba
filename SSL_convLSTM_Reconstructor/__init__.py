"""Self-supervised frame reconstructor: encoder -> ConvLSTM -> decoder, predicting frame 22 from frames 1-11.

convlstm.py holds the repository's one ConvLSTM; model.py the encoder/decoder family and the
Reconstructor built from them (any channel counts: 49-class masks in and out work too). Its reference
frames (frame 11 with objects moved) are an input, made by the pipeline: this folder imports no forecasting
module (tests/test_layout.py).
"""
