// term.c: the registry of loss terms and building them from an experiment (see term.h).
#include "nn/term.h"
#include "nn/net.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A section header that is a term type is also listed in nn/net.c's non_layer_sections (the
// network skips it).
static const LossTermOps *const term_types[] = { &feature_l2_ops, NULL };       // by section header
static const LossTermOps *const debias_methods[] = { &end_ops, &mi_ops, &clad_ops, NULL };  // [debias] method =
static const char *const debias_method_names[] = { "end", "mi", "clad", NULL };

const LossTermOps *loss_term_ops_find(const char *type) {
    for (int i = 0; term_types[i]; i++)
        if (strcmp(term_types[i]->type, type) == 0) return term_types[i];
    return NULL;
}

void loss_term_add_log(LossTerm *t, const char *name, TermLogKind kind) {
    DF_ASSERT(t->n_logs < TERM_MAX_LOGS);
    snprintf(t->log_names[t->n_logs], sizeof t->log_names[0], "%s", name);
    t->log_kind[t->n_logs++] = kind;
}

// The layer a term reads: it must exist; a debiasing loss must also act on a representation
// -- not on the network's output -- with something trainable at or below it.
static int place_term(LossTerm *t, const Ini *ini, IniSection *sec, Net *net, int debias, DfError *err) {
    char where[512];
    ini_where_key(ini, sec, "layer", where, sizeof where);
    const char *layer = ini_str(sec, "layer", NULL);
    if (!layer || !*layer) return df_err(err, "%s: missing: the name of the layer whose output the term reads", where);
    if (strlen(layer) >= sizeof t->layer) return df_err(err, "%s: name too long", where);
    snprintf(t->layer, sizeof t->layer, "%s", layer);
    t->act = net_layer_output_index(net, layer);
    if (t->act < 1) return df_err(err, "%s = %s: the network has no layer of that name", where, layer);
    t->d = (int)shape_numel(net->layers[t->act - 1].out_shape);
    if (!debias) return 0;
    if (t->act == net->n_layers)
        return df_err(err, "%s = %s: that is the network's output; a debiasing loss acts on a representation below it "
                           "(the bottleneck the classifier reads)", where, layer);
    size_t below = 0;
    for (int i = 0; i < t->act; i++) below += net->layers[i].n_params;
    if (below == 0) return df_err(err, "%s = %s: no layer at or below it has parameters, so the loss could change nothing", where, layer);
    return 0;
}

static int build_one(LossTerm *t, const Ini *cini, IniSection *sec, Net *net, const MetaSchema *schema, uint64_t seed,
                     DfError *err) {
    Ini *ini = (Ini *)cini;
    memset(t, 0, sizeof *t);
    const LossTermOps *ops = loss_term_ops_find(sec->name);
    if (!ops) {  // [debias]
        int method;
        if (ini_choice(ini, sec, "method", NULL, debias_method_names, &method, err)) return -1;
        ops = debias_methods[method];
    }
    t->ops = ops;
    t->seed = seed;
    t->n_classes = schema ? schema->n_classes : 0;
    snprintf(t->section, sizeof t->section, "%s", sec->name);
    if (place_term(t, ini, sec, net, ops != loss_term_ops_find(sec->name), err)) return -1;
    return ops->build(t, ini, sec, schema, err);
}

int loss_terms_build(LossTerm **terms, int *n, const Ini *cini, Net *net, const MetaSchema *schema, uint64_t seed,
                     DfError *err) {
    Ini *ini = (Ini *)cini;
    *terms = NULL;
    *n = 0;
    for (int i = 0; i < ini->n; i++) {
        IniSection *sec = &ini->sections[i];
        if (!loss_term_ops_find(sec->name) && strcmp(sec->name, "debias") != 0) continue;
        *terms = xrealloc(*terms, sizeof(LossTerm) * (size_t)(*n + 1));
        if (build_one(&(*terms)[(*n)++], ini, sec, net, schema, seed, err)) {
            loss_terms_free(*terms, *n);
            *terms = NULL;
            *n = 0;
            return -1;
        }
    }
    return 0;
}

void loss_terms_free(LossTerm *terms, int n) {
    for (int i = 0; i < n; i++)
        if (terms[i].ops && terms[i].ops->destroy) terms[i].ops->destroy(&terms[i]);
    free(terms);
}
