/*
 * lstm_data.h - every header of liblstm besides lstm.h in one include:
 * lstm_text.h (CSV, tokenizer, vocabulary, datasets, corpus), lstm_io.h
 * (JSON, files, safetensors, TensorBoard) and lstm_train.h (metrics, model
 * files, the trainer).
 */
#ifndef LSTM_DATA_H
#define LSTM_DATA_H

#include "lstm.h"
#include "lstm_io.h"
#include "lstm_text.h"
#include "lstm_train.h"

#endif /* LSTM_DATA_H */
