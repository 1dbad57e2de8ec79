"""`jsmp.models.lstm.LSTM`, the name runs' config.yaml give the LSTM (conf/model/lstm.yaml); the
recurrent models live in jsmp.models.recurrent."""

from jsmp.models.recurrent import LSTM

__all__ = ["LSTM"]
