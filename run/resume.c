// resume.c: a resumed run trains what its checkpoint trained (see resume.h).
#include "run/resume.h"
#include "nn/layer.h"
#include <stdlib.h>
#include <string.h>

const char *const resume_may_change[] = {
    "train.epochs", "train.lr", "train.min_lr", "train.schedule", "train.step_size", "train.gamma", "train.warmup_epochs",
    "train.out_dir", "train.checkpoint_every", "train.log_every", "train.threads", "train.bucket_mb", "train.dcor_layer",
    "train.dcor_every", "train.dcor_columns", "train.accuracy_by", "train.train_eval_gap", "train.profile", "train.on_nonfinite", "train.check_every", "data.source", "data.prefetch", "data.read", "data.cache",
    "data.cache_mb",
    NULL,
};

// Only where the run writes, how often it logs and checkpoints, how it is spread over
// threads and buckets, and where and how the data are read: none changes what is trained.
const char *const finished_may_change[] = {
    "train.out_dir", "train.checkpoint_every", "train.log_every", "train.threads", "train.bucket_mb", "train.profile",
    "train.check_every", "data.source", "data.prefetch", "data.read", "data.cache", "data.cache_mb",
    NULL,
};

static int may_change(const char *const *list, const char *section, const char *key) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", section, key);
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], name) == 0) return 1;
    return 0;
}

// The k-th section (0-based) of name `name`, or NULL.
static IniSection *nth_section(const Ini *ini, const char *name, int k) {
    for (int i = 0; i < ini->n; i++)
        if (strcmp(ini->sections[i].name, name) == 0 && k-- == 0) return &ini->sections[i];
    return NULL;
}

static IniEntry *find_key(IniSection *s, const char *key) {
    for (int i = 0; s && i < s->n; i++)
        if (strcmp(s->entries[i].key, key) == 0) return &s->entries[i];
    return NULL;
}

// Layers in order: the network differs when the sequence of layer types does.
static int same_layer_sequence(const Ini *now, const Ini *saved, const char *ckpt, const char *why, DfError *err) {
    int a = 0, b = 0;
    for (;;) {
        while (a < now->n && !layer_ops_find(now->sections[a].name)) a++;
        while (b < saved->n && !layer_ops_find(saved->sections[b].name)) b++;
        if (a == now->n && b == saved->n) return 0;
        if (a == now->n || b == saved->n || strcmp(now->sections[a].name, saved->sections[b].name) != 0) {
            char where[512];
            ini_where(now, a < now->n ? &now->sections[a] : NULL, NULL, where, sizeof where);
            return df_err(err, "%s: the network differs from the one %s was trained with: %s [%s] where it has %s%s%s%s",
                          a < now->n ? where : now->origin, ckpt,
                          a < now->n ? "layer" : "no further layer", a < now->n ? now->sections[a].name : "",
                          b < saved->n ? "[" : "no further layer", b < saved->n ? saved->sections[b].name : "",
                          b < saved->n ? "]" : "", why);
        }
        a++, b++;
    }
}

// The first difference of `now` from saved_text outside the keys of `may` (and, with
// layers_only, outside the layer sections), the message ending with `why`.
static int compare_config(const Ini *now, const char *saved_text, const char *ckpt, const char *const *may, int layers_only,
                          const char *why, DfError *err) {
    Ini saved;
    char origin[600];
    snprintf(origin, sizeof origin, "%s: config", ckpt);
    if (ini_parse_string(&saved, saved_text, origin, err)) return -1;
    // Configurations stored with their defaults name every key they used: there, a key on
    // one side only is a difference too.
    int resolved = strstr(saved_text, INI_RESOLVED_MARK) != NULL, rc = same_layer_sequence(now, &saved, ckpt, why, err);
    for (int i = 0; i < now->n && rc == 0; i++) {
        IniSection *s = &now->sections[i];
        if (layers_only && !layer_ops_find(s->name)) continue;
        int k = 0;  // s is the k-th section of its name
        for (int j = 0; j < i; j++) k += strcmp(now->sections[j].name, s->name) == 0;
        IniSection *t = nth_section(&saved, s->name, k);
        char label[160];
        IniEntry *named = find_key(s, "name");
        snprintf(label, sizeof label, "[%s]%s%s", s->name, named ? " " : "", named ? named->value : "");
        for (int e = 0; e < s->n && rc == 0; e++) {
            const IniEntry *x = &s->entries[e];
            if (!x->used || may_change(may, s->name, x->key)) continue;
            const IniEntry *y = find_key(t, x->key);
            if (y ? strcmp(x->value, y->value) == 0 : !resolved) continue;
            // a key at its default that the checkpoint's version did not have: a key is only
            // ever added with a default that keeps the old behaviour, so the training is the same
            if (!y && x->is_default && t) continue;
            char where[512];
            if (x->is_default) snprintf(where, sizeof where, "%s", now->origin);
            else ini_where(now, s, x->key, where, sizeof where);
            rc = df_err(err, "%s: %s %s = %s%s, but %s was trained with %s = %s%s", where, label, x->key, x->value,
                        x->is_default ? " (default)" : "", ckpt, x->key, y ? y->value : "(not set)", why);
        }
    }
    ini_free(&saved);
    return rc;
}

int resume_check_config(const Ini *now, const char *saved_text, const char *ckpt, DfError *err) {
    return compare_config(now, saved_text, ckpt, resume_may_change, 0,
                          ": --resume continues the same training (docs/config.md lists what may change)", err);
}

int resume_check_finished(const Ini *now, const char *saved_text, const char *origin, DfError *err) {
    return compare_config(now, saved_text, origin, finished_may_change, 0, "", err);
}

int resume_check_network(const Ini *now, const char *saved_text, const char *ckpt, const char *why, DfError *err) {
    static const char *const none[] = { NULL };
    return compare_config(now, saved_text, ckpt, none, 1, why, err);
}
