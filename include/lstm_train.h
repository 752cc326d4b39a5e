/*
 * lstm_train.h - a training run in the library: the text classifier's
 * evaluation and metrics, its model file (weights, vocabulary, classes,
 * configuration), the trainer (AdamW, early stopping with restore-best,
 * gradient clipping, the numerical guard, a resumable training state)
 * and the memory budget of a run. Nothing here prints or exits: a program
 * sees the run through the hooks and the return codes.
 *
 * Errors follow lstm.h: a negative LSTM_E* code and, in lstm_errmsg(), one
 * line naming the file, field, epoch or step at fault.
 */
#ifndef LSTM_TRAIN_H
#define LSTM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "lstm.h"
#include "lstm_io.h"
#include "lstm_text.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metrics --------------------------------------------------------------- */

typedef struct {
    size_t C;
    size_t *confusion;        /* (C,C): row = true class, column = predicted */
    double *precision, *recall, *f1;
    size_t *support;
    double accuracy, macro_f1;
    size_t total;
} lstm_metrics;

int lstm_metrics_init(lstm_metrics *m, size_t C);
void lstm_metrics_add(lstm_metrics *m, int32_t truth, int32_t pred);
/* Computes precision, recall, F1 (0 where undefined) and accuracy. */
void lstm_metrics_finish(lstm_metrics *m);
void lstm_metrics_free(lstm_metrics *m);
/* init, add (labels[rows[i]], pred[i]) for i < n, finish. */
int lstm_metrics_of(lstm_metrics *m, size_t C, const size_t *rows, size_t n,
                    const int32_t *labels, const int32_t *pred);
/* Appends the report: per class precision, recall, F1 and support, the
 * accuracy and macro F1, then the confusion matrix; class names from
 * classes[0..C). */
void lstm_metrics_report(lstm_buf *b, const lstm_metrics *m,
                         char *const *classes);
/* Appends two tables: the first max of rows[0..n) with their predictions
 * pred[0..n), then the first max errors; a row each with its number, the
 * start of its text in ds, its first tokens in c as v spells them, its
 * true class (labels are by row) and the predicted one. */
void lstm_metrics_examples(lstm_buf *b, const lstm_dataset *ds,
                           const lstm_corpus *c, const lstm_vocab *v,
                           const size_t *rows, size_t n,
                           const int32_t *labels, const int32_t *pred,
                           char *const *classes, size_t max);

/* ---- checkpoints of a layer-level run ----------------------------------- */
/* A layer-level training run's checkpoint: the weights of ps under their
 * names, AdamW's moments as "optimizer.exp_avg.<name>" and
 * "optimizer.exp_avg_sq.<name>", its step as metadata "optimizer.step",
 * then the caller's metadata pairs. Written atomically. */
int lstm_adamw_save(const char *path, const lstm_params *ps,
                    const lstm_adamw *o, const char *const *keys,
                    const char *const *vals, size_t nmeta);
/* Reads such a file back into ps and o (initialised for ps->n); other
 * tensors in the file are ignored. */
int lstm_adamw_load(const lstm_safetensors *st, lstm_params *ps,
                    lstm_adamw *o);

/* ---- evaluation ------------------------------------------------------------ */

enum { LSTM_EVAL_BATCH = 32 };  /* rows per inference batch */

/* Runs m (inference: no dropout) over rows[0..n) of c in batches of
 * LSTM_EVAL_BATCH. pred (n) gets each row's most probable class; probs
 * (n,C), unless NULL, the probabilities. With labels (indexed by row)
 * non-NULL, *loss (mean NLL) and *acc are set (each may be NULL). */
int lstm_evaluate(lstm_classifier *m, const lstm_corpus *c,
                  const size_t *rows, size_t n, const int32_t *labels,
                  int32_t *pred, float *probs, double *loss, double *acc);
/* Writes path atomically as CSV: a header, then for each of rows[0..n) its
 * row and CSV line in ds, true and predicted class names, the predicted
 * class's probability (probs is (n,C)), 1 if correct, and the first 100
 * characters of its text. labels are indexed by row. */
int lstm_predictions_csv(const char *path, const lstm_dataset *ds,
                         const size_t *rows, size_t n, const int32_t *labels,
                         const int32_t *pred, const float *probs,
                         char *const *classes, size_t C);

/* ---- the model file ---------------------------------------------------------
 * model.safetensors: the classifier's weights under the notebook's PyTorch
 * names, and as metadata "vocab" (JSON array of the tokens by id),
 * "classes" (JSON array of the class names by index) and "config" (a JSON
 * object: vocab_size, embed_dim, hidden, layers, num_classes, mlp,
 * max_len, dropout, pool, precision). docs/formats.md has the details. */

/* Writes path atomically. */
int lstm_model_save(const char *path, const lstm_classifier *net,
                    const lstm_vocab *vocab, char *const *classes, size_t C,
                    size_t max_len);

typedef struct {
    lstm_classifier net;
    lstm_vocab vocab;
    char **classes;           /* (n_classes) names, owned */
    size_t n_classes;
    size_t max_len;           /* tokens a text is cut to */
    int32_t *ids;             /* (max_len) scratch of predict */
} lstm_model;

/* Reads and checks a model file; on error nothing is left allocated. */
int lstm_model_load(lstm_model *m, const char *path);
/* Classifies one UTF-8 text: returns its class (>= 0) or an error (the
 * text is not valid UTF-8); m->net.logp (C) holds the log-probabilities
 * until the next call. */
int lstm_model_predict(lstm_model *m, const char *text, size_t len);
/* Appends the last prediction best (lstm_model_predict's return) of the
 * input named name: "name: class  (a 0.912, b 0.051, c 0.020)" with the
 * three most probable classes, or with json one object: {"input", "label",
 * "probs": {class: probability}, "logp": [by class]}; a line either way. */
void lstm_model_prediction(lstm_buf *b, const lstm_model *m, int best,
                           const char *name, int json);
void lstm_model_free(lstm_model *m);

/* ---- the trainer ------------------------------------------------------------ */

enum { LSTM_MONITOR_TRAIN_LOSS = 0, LSTM_MONITOR_VAL_LOSS = 1,
       LSTM_MONITOR_VAL_ACC = 2 };
/* "train-loss", "val-loss", "val-acc"; parse: 0 or LSTM_EINVAL. */
const char *lstm_monitor_name(int monitor);
int lstm_monitor_parse(const char *s, int *monitor);

/* The learning rate of each step, from the step's place k in the run's
 * N = epochs x steps-per-epoch steps (so a resumed run follows it too),
 * and W = warmup x N warm-up steps:
 *   constant  lr, after a linear warm-up from lr/W over the first W steps
 *   cosine    the same warm-up, then lr * (1 + cos(pi (k-W)/(N-W))) / 2
 *   onecycle  PyTorch's OneCycleLR (cosine annealing): from lr/25 up to lr
 *             over the first W steps (warmup 0: 0.3), then down to
 *             lr/25/1e4 at the last step.
 * Early stopping ends a run before N; the schedule does not shorten. */
enum { LSTM_LR_CONSTANT = 0, LSTM_LR_COSINE = 1, LSTM_LR_ONECYCLE = 2 };
const char *lstm_lr_schedule_name(int schedule);
int lstm_lr_schedule_parse(const char *s, int *schedule);
/* The learning rate at step k (from 0) of n. */
double lstm_lr_at(int schedule, double lr, double warmup, size_t k,
                  size_t n);

typedef struct {
    long epochs;              /* at most this many epochs (10) */
    size_t batch;             /* rows per step (4) */
    double lr, beta1, beta2, eps, weight_decay;  /* AdamW (1e-3, 0.9,
                                                    0.999, 1e-8, 1e-5) */
    double clip_grad_norm;    /* > 0: clip_grad_norm_ before each step (0) */
    int lr_schedule;          /* LSTM_LR_* (constant) */
    double warmup;            /* warm-up, a fraction of all steps (0) */
    double word_dropout;      /* each token of a training text becomes
                                 [UNK] with this probability (0), drawn
                                 from the dropout generator */
    int monitor;              /* LSTM_MONITOR_* (train-loss) */
    long patience;            /* epochs without improvement (3) */
    uint64_t seed;            /* weights: seed, order: seed+1, dropout:
                                 seed+2 (42) */
    uint64_t data_rows;       /* the data's identity, checked when a */
    uint32_t data_crc;        /* training state is loaded (0, 0) */
} lstm_train_config;

void lstm_train_config_default(lstm_train_config *c);

/* What one epoch gave; val_* are NaN without validation rows. */
typedef struct {
    long epoch;
    double train_loss, train_acc, val_loss, val_acc;
    double seconds;           /* of the epoch's training steps */
    double items_per_s;
    size_t items;             /* rows trained on in this process */
} lstm_epoch_stats;

typedef struct lstm_trainer lstm_trainer;

/* Data-parallel training across processes: each of `size` processes holds
 * the whole model and takes its share of every global batch (rows
 * [B*rank/size, B*(rank+1)/size) of it, the batch order the one-process
 * order); the gradients, scaled by share/B, are summed across the
 * processes, then every process takes the same clipped AdamW step. Of the
 * embedding tables only the rows some process's batch used are summed:
 * sum_doubles first sums per-row 0/1 flags with the step's loss and
 * accuracy sums (so every process sees the same epoch lines and makes the
 * same early-stopping decision; each validates on all validation rows),
 * sum_floats then the rest of the block and those rows. Dropout and word
 * dropout: each step draws a seed from the shared dropout generator, and
 * process `rank` draws its masks from a generator seeded with seed +
 * rank, so a run depends on the number of processes but is the same for
 * the same number. The transport is the caller's: two sums (lstm_mpi.h
 * has MPI's). */
typedef struct {
    int rank, size;
    /* buf[0..n) summed across the processes, in place, the same on every
     * process; 0 or an error (lstm_error set) */
    int (*sum_floats)(float *buf, size_t n, void *ctx);
    int (*sum_doubles)(double *buf, size_t n, void *ctx);
    void *ctx;
} lstm_dist;

/* Callbacks, each may be NULL; user is passed back. */
typedef struct {
    void *user;
    /* at the start of an epoch (t->step is where it resumes) */
    void (*epoch_begin)(const lstm_trainer *t, void *user);
    /* after each step: step of steps done, rows and mean loss so far in
     * this epoch (rows counted in this process) */
    void (*step)(const lstm_trainer *t, size_t step, size_t steps,
                 size_t items, double loss, void *user);
    /* after each epoch, once early stopping has been updated and the
     * position moved to the next epoch (a state saved here resumes
     * there). A non-zero return ends fit with that value. */
    int (*epoch_end)(lstm_trainer *t, const lstm_epoch_stats *s, void *user);
    /* polled before every step and after every epoch: non-zero ends fit
     * with LSTM_STOPPED, the state consistent for lstm_trainer_save */
    int (*should_stop)(void *user);
} lstm_train_hooks;

enum { LSTM_STOPPED = 1 };    /* fit's return when should_stop said so */

/* Caller-owned; the fields are readable, the library alone writes them. */
struct lstm_trainer {
    lstm_train_config cfg;
    lstm_train_hooks hooks;
    lstm_classifier *model;   /* the caller's, trained in place */
    lstm_adamw opt;
    float *best;              /* (ps.n) best weights (val-* monitors) */
    /* the data, the caller's (lstm_trainer_data) */
    const lstm_corpus *corpus;
    const int32_t *labels;    /* by row */
    const size_t *train, *val;
    size_t ntrain, nval;
    /* the position: everything a resumed run needs */
    long epoch;               /* the epoch in progress, from 1 */
    size_t step;              /* its steps taken */
    double lsum;              /* its loss sum, hits and rows */
    size_t correct, seen;
    lstm_rng rng_init, rng_shuffle, rng_dropout; /* shuffle: at the
                                                    epoch's start */
    double best_metric;
    long best_epoch, wait;    /* early stopping */
    int stopped;              /* early stopping fired */
    int restored;             /* fit put the best weights back */
    long epochs_run;          /* epochs completed by fit in this process */
    double t_opt, t_eval;     /* seconds in AdamW and in validation */
    const lstm_dist *dist;    /* NULL: one process (lstm_trainer_distribute) */
    double t_sum;             /* seconds in the gradient sum */
    int grads_own;            /* the gradients are the last step's own
                                 backward's (one process, finished) */
    int grads_rows;           /* the gradients are zero in the embedding
                                 tables but for the rows in drows (the
                                 last distributed step's sums) */
    /* scratch */
    float *dbuf;              /* distributed: the packed sums (dcap) */
    int32_t *drows;           /* the tables' rows some process used */
    size_t dcap, nrows[2];
    size_t *order;
    int32_t *vpred;
    lstm_batch batch;
};

/* Seeds the generators from cfg->seed, initialises m's weights from the
 * first (lstm_classifier_reset) and sets up AdamW and, for a validation
 * monitor, the best weights. m must be initialised. */
int lstm_trainer_init(lstm_trainer *t, lstm_classifier *m,
                      const lstm_train_config *cfg);
/* The rows to train and validate on (caller-owned, valid during fit). */
int lstm_trainer_data(lstm_trainer *t, const lstm_corpus *c,
                      const int32_t *labels, const size_t *train,
                      size_t ntrain, const size_t *val, size_t nval);
/* Trains data-parallel with d (caller-owned, valid during fit) from the
 * next step on; NULL goes back to one process. The sums take a buffer of
 * what they carry (the block outside the embedding tables and the rows
 * used: a few MB for the notebook's model at batch 4 on 2 processes, at
 * most the size of the gradient block) and 8 bytes a table row. */
int lstm_trainer_distribute(lstm_trainer *t, const lstm_dist *d);
/* Steps in an epoch. */
size_t lstm_trainer_steps(const lstm_trainer *t);
/* Trains from the current position until cfg.epochs are done or early
 * stopping fires, then (val-* monitors) restores the best weights.
 * Returns 0, LSTM_STOPPED, a hook's non-zero value, or an error: the
 * numerical guard gives LSTM_ENUMERIC with a message naming the epoch,
 * the step, and the parameter nearest the loss whose gradient is not
 * finite; a step whose loss or gradient norm is not finite updates
 * nothing (a non-finite gradient met inside AdamW has been applied, as
 * torch.optim.AdamW would). A changed data set on load is LSTM_EINVAL. */
int lstm_trainer_fit(lstm_trainer *t);
/* The whole training state in one file (atomically): the weights, AdamW's
 * moments and step, the best weights, and as metadata "state" (the
 * position, generators, early stopping and data identity), then the
 * caller's metadata pairs. docs/formats.md has the layout. */
int lstm_trainer_save(const lstm_trainer *t, const char *path,
                      const char *const *keys, const char *const *vals,
                      size_t nmeta);
/* Puts a saved state back into an initialised trainer (same model
 * configuration, data set with lstm_trainer_data): fit then continues bit
 * for bit as the run that saved it would have. path names the file in
 * messages. */
int lstm_trainer_load(lstm_trainer *t, const lstm_safetensors *st,
                      const char *path);
/* Appends where the time of fit's epochs went, seconds in all (measured
 * by the caller around fit): per epoch, the model's parts, AdamW, the
 * rest and validation, and across processes the gradient sums; or, when
 * fit ran no epoch, that the run had finished before. */
void lstm_trainer_timing(lstm_buf *b, const lstm_trainer *t, double seconds);
void lstm_trainer_free(lstm_trainer *t);

/* ---- a run's folder -----------------------------------------------------------
 * Where a classifier training run keeps what it made, each file replaced
 * atomically: train_state.safetensors (the trainer's state, and as
 * metadata the run's options, metrics.csv so far, the split's checksum
 * and the number of processes: all a stopped run needs to go on),
 * metrics.csv, model.safetensors (lstm_model_save) after every epoch;
 * split.json at the start, predictions.csv of the test rows at the end;
 * TensorBoard events in tb_logs/LSTMClassifier/version_N. The run holds
 * train.lock while it writes. The calls go in this order: init, resume
 * (a stopped run) or nothing, claim, split, start, then epoch (from the
 * trainer's epoch_end hook), save_state (a stop), test, free. */
#define LSTM_RUN_STATE "train_state.safetensors"

typedef struct {
    char dir[1024];           /* the run's folder */
    char tbdir[1100];         /* its TensorBoard folder (start) */
    const char *dir_flag;     /* how messages name the folder ("the run's
                                 folder"; a program may put its flag) */
    lstm_opts *opts;          /* saved with the state, restored on resume */
    int writer;               /* 0: writes nothing (every process of a
                                 distributed run but one) */
    int nproc;                /* processes training the run */
    int resumed;
    const lstm_textset *ts;   /* its data (split) */
    lstm_tblog tb;            /* open after start (the writer's) */
    lstm_buf metrics;         /* metrics.csv so far */
    /* private */
    lstm_safetensors st;
    lstm_json saved;
    int lock;
    char path[1400];
} lstm_run;

int lstm_run_init(lstm_run *r, const char *dir, lstm_opts *opts,
                  int writer, int nproc);
/* Opens the folder's training state and puts its options into r->opts
 * (lstm_opts_restore: string options point into r, valid until free) and
 * its TensorBoard folder into r->tbdir. */
int lstm_run_resume(lstm_run *r);
/* Locks the folder for this run and removes stale temporaries of its
 * files (lstm_dir_lock): before anything is written there. */
int lstm_run_claim(lstm_run *r);
/* The run's data; writes split.json. Resumed, first checks that ts's
 * split is the one the run trained on. */
int lstm_run_split(lstm_run *r, const lstm_textset *ts);
/* Resumed: checks the number of processes and loads the state into t
 * (initialised with its data: LSTM_EINVAL when the data differ); then
 * opens the TensorBoard log (a new version folder for a new run). */
int lstm_run_start(lstm_run *r, lstm_trainer *t);
/* After an epoch s of t: TensorBoard scalars, a metrics.csv line, then
 * the state, metrics.csv and the model written. */
int lstm_run_epoch(lstm_run *r, const lstm_trainer *t,
                   const lstm_epoch_stats *s);
int lstm_run_save_state(lstm_run *r, const lstm_trainer *t);
int lstm_run_save_model(lstm_run *r, const lstm_classifier *m);
/* The test rows: pred (ts->split.n[2]) and *acc, mt (left as it is
 * without test rows), the test accuracy to TensorBoard, predictions.csv;
 * then the model written. */
int lstm_run_test(lstm_run *r, const lstm_trainer *t, lstm_metrics *mt,
                  int32_t *pred, double *acc);
/* Closes the files and releases the lock. */
void lstm_run_free(lstm_run *r);

/* Stop signals, for a program's training loop (the process's handlers:
 * call once, from the main thread). The first SIGINT or SIGTERM asks the
 * run to stop: lstm_run_stop_signal() returns it from then on (a
 * trainer's should_stop hook reads it; save the state and exit then). A
 * second one ends the process at once (the default action), and so does
 * a step still running `grace` seconds after the first: "PROG: the step
 * in progress did not end within N s of the signal; stopped without
 * saving" on stderr, exit status 128 + the signal (files written with
 * lstm_write_atomic are whole either way). A file size limit becomes a
 * write error rather than a kill (SIGXFSZ ignored). */
int lstm_run_catch_signals(const char *prog, unsigned grace);
int lstm_run_stop_signal(void);

/* ---- the memory budget ------------------------------------------------------ */

/* Bytes a classifier training run holds, from its configuration and data
 * before any weight exists. */
typedef struct {
    size_t rows;              /* batch rows the workspaces are sized for:
                                 max(batch, LSTM_EVAL_BATCH) */
    double params;            /* weights, gradients, AdamW, best weights */
    double activations;       /* both workspaces at the larger of the
                                 training and evaluation batch */
    double texts;             /* the texts as read and their tokens */
    double state;             /* the training state's serialised buffer */
    double total;
    double checkpoint;        /* bytes of model.safetensors */
} lstm_train_budget;

void lstm_train_budget_of(lstm_train_budget *b,
                          const lstm_classifier_config *cfg, size_t batch,
                          size_t max_len, int keep_best,
                          const lstm_dataset *ds, const lstm_corpus *c,
                          const lstm_vocab *v);
/* Whether the machine has b: its total within limit bytes (0: the
 * machine's memory; limit_name is how the message names a given limit)
 * and within the address-space limit (ulimit -v) less OpenBLAS's reserve
 * (LSTM_ENOMEM); a checkpoint's bytes free in the folder dir and the
 * state within the file size limit, ulimit -f (LSTM_EIO). Better refused
 * before the run than after an hour of it. */
int lstm_train_budget_check(const lstm_train_budget *b, double limit,
                            const char *limit_name, const char *dir);
/* LSTM_ENOMEM when the address-space limit (ulimit -v) is below what
 * OpenBLAS needs to start (it may wait for ever there): a program calls it
 * before its first matrix product. */
int lstm_address_check(void);

#ifdef __cplusplus
}
#endif
#endif /* LSTM_TRAIN_H */
