// resume.h: what a resumed training run may change. `train --resume CKPT` continues the run
// the checkpoint was written by; it must be the same training, or the result is neither
// that run nor a new one. So the configuration as run (stored in the checkpoint, every
// default filled in) is compared key by key with the one given now.
#ifndef DF_RESUME_H
#define DF_RESUME_H
#include "base/ini.h"

// "section.key" of the settings a resumed run may change (NULL-terminated): the length of
// the run and its learning-rate schedule, where it writes, how often it logs, checkpoints
// and reports, threads and communication buckets, and where the data files are and how
// they are read. docs/config.md lists them.
extern const char *const resume_may_change[];

// 0 when `now` (parsed, the network built and every section read, so its defaults are
// recorded) trains what the checkpoint's configuration `saved_text` trained; otherwise -1
// with the first difference in err, naming the section and key: a layer added, removed,
// reordered or with another setting, another loss, global batch, optimizer, seed, data or
// split. A checkpoint written before configurations were stored with their defaults is
// compared on the keys both name.
int resume_check_config(const Ini *now, const char *saved_text, const char *checkpoint, DfError *err);

// A finished run stands for `now` (cv keeps a finished fold) only when it trained exactly
// that: every setting compared as above, save the few that cannot change what is trained
// (NULL-terminated: out_dir, checkpoint_every, log_every, threads, bucket_mb, profile,
// check_every, and data.source, prefetch, read, cache, cache_mb). -1 with the first
// difference in err, "WHERE: [section] key = value, but ORIGIN was trained with key = value".
extern const char *const finished_may_change[];
int resume_check_finished(const Ini *now, const char *saved_text, const char *origin, DfError *err);

// The network alone, for applying a checkpoint (predict, eval, saliency): `now`'s layer
// sections, built, against the checkpoint's -- the same layers in the same order, every
// setting equal, those without parameters too (an activation, stride, pad, BatchNorm's eps),
// which the tensors' shapes cannot tell; [data], [train], [loss] and the loss terms may
// differ. -1 with the first difference in err, its message ending with `why`.
int resume_check_network(const Ini *now, const char *saved_text, const char *ckpt, const char *why, DfError *err);
#endif
