// term.c: the registry of loss terms and building them from an experiment (see term.h).
#include "nn/term.h"
#include <stdlib.h>
#include <string.h>

static const LossTermOps *const term_types[] = { &feature_l2_ops, NULL };

const LossTermOps *loss_term_ops_find(const char *type) {
    for (int i = 0; term_types[i]; i++)
        if (strcmp(term_types[i]->type, type) == 0) return term_types[i];
    return NULL;
}

int loss_terms_build(LossTerm **terms, int *n, const Ini *cini, const MetaSchema *schema, DfError *err) {
    Ini *ini = (Ini *)cini;
    *terms = NULL;
    *n = 0;
    for (int i = 0; i < ini->n; i++) {
        const LossTermOps *ops = loss_term_ops_find(ini->sections[i].name);
        if (!ops) continue;
        *terms = xrealloc(*terms, sizeof(LossTerm) * (size_t)(*n + 1));
        LossTerm *t = &(*terms)[(*n)++];
        memset(t, 0, sizeof *t);
        t->ops = ops;
        if (ops->build(t, ini, &ini->sections[i], schema, err)) {
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
        if (terms[i].ops->destroy) terms[i].ops->destroy(&terms[i]);
    free(terms);
}
