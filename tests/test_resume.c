// test_resume.c: --resume's comparison of the configuration with the checkpoint's
// (run/resume.h): a key a newer version reads at its default, absent from an older
// checkpoint's configuration, is the same training; set to another value, it is not. And
// the two other rules on the same comparison: a finished run kept by cv (every setting but
// where and how it runs), a checkpoint applied by predict/eval (the layers only).
#include <stdlib.h>
#include <string.h>
#include "base/ini.h"
#include "run/resume.h"
#include "testutil.h"

// An Ini from text, its keys read as a trainer would: [data] source and, when read_masks,
// [data] masks (default 0) -- the key the "newer version" knows.
static void configure(Ini *ini, const char *text, int read_masks) {
    DfError err;
    CU_ASSERT_FATAL(ini_parse_string(ini, text, "run.ini", &err) == 0);
    IniSection *d = ini_section(ini, "data"), *t = ini_section(ini, "train");
    int masks, epochs;
    ini_str(d, "source", NULL);
    CU_ASSERT(ini_int(ini, t, "epochs", 1, 1, 100, &epochs, &err) == 0);
    if (read_masks) CU_ASSERT(ini_int(ini, d, "masks", 0, 0, 1, &masks, &err) == 0);
}

static void test_new_default_key(void) {
    Ini old, now;
    DfError err = { "" };
    configure(&old, "[data]\nsource = synth:mri3d\n[train]\nepochs = 2\n", 0);
    char *saved = ini_serialize(&old);  // an older version's configuration as run: no masks key
    CU_ASSERT(strstr(saved, INI_RESOLVED_MARK) != NULL && strstr(saved, "masks") == NULL);
    configure(&now, "[data]\nsource = synth:mri3d\n[train]\nepochs = 2\n", 1);
    CU_ASSERT_EQUAL(resume_check_config(&now, saved, "old.h5", &err), 0);
    ini_free(&now);
    configure(&now, "[data]\nsource = synth:mri3d\nmasks = 1\n[train]\nepochs = 2\n", 1);
    CU_ASSERT_EQUAL(resume_check_config(&now, saved, "old.h5", &err), -1);
    CU_ASSERT(tu_contains(err.msg, "[data] masks = 1, but old.h5 was trained with masks = (not set)"));
    ini_free(&now);
    // a key the checkpoint has, at another value, even when now it is the default
    free(saved);
    ini_free(&old);
    configure(&old, "[data]\nsource = synth:mri3d\nmasks = 1\n[train]\nepochs = 2\n", 1);
    saved = ini_serialize(&old);
    configure(&now, "[data]\nsource = synth:mri3d\n[train]\nepochs = 2\n", 1);
    CU_ASSERT_EQUAL(resume_check_config(&now, saved, "old.h5", &err), -1);
    CU_ASSERT(tu_contains(err.msg, "masks = 0 (default), but old.h5 was trained with masks = 1"));
    ini_free(&now);
    ini_free(&old);
    free(saved);
}

// An Ini from text, read as a trainer would: [train] lr, out_dir, threads; [batchnorm3d] eps.
static void configure_bn(Ini *ini, const char *text) {
    DfError err;
    CU_ASSERT_FATAL(ini_parse_string(ini, text, "run.ini", &err) == 0);
    IniSection *t = ini_section(ini, "train"), *bn = ini_section(ini, "batchnorm3d");
    double lr, eps;
    int threads;
    CU_ASSERT(ini_double(ini, t, "lr", 1e-3, 0.0, 100.0, &lr, &err) == 0);
    CU_ASSERT(ini_int(ini, t, "threads", 0, 0, 1024, &threads, &err) == 0);
    ini_str(t, "out_dir", "");
    ini_str(bn, "name", NULL);
    CU_ASSERT(ini_double(ini, bn, "eps", 1e-5, 1e-12, 1.0, &eps, &err) == 0);
}

static void test_finished_and_network(void) {
    Ini old, now;
    DfError err = { "" };
    configure_bn(&old, "[train]\nlr = 0.01\nout_dir = a\n[batchnorm3d]\nname = bn1\n");
    char *saved = ini_serialize(&old);
    // cv keeps a finished run for another out_dir or thread count, not for another lr
    configure_bn(&now, "[train]\nlr = 0.01\nout_dir = b\nthreads = 2\n[batchnorm3d]\nname = bn1\n");
    CU_ASSERT_EQUAL(resume_check_finished(&now, saved, "a/config.ini", &err), 0);
    ini_free(&now);
    configure_bn(&now, "[train]\nlr = 0.5\nout_dir = a\n[batchnorm3d]\nname = bn1\n");
    CU_ASSERT_EQUAL(resume_check_config(&now, saved, "a/checkpoint.h5", &err), 0);  // --resume may change lr
    CU_ASSERT_EQUAL(resume_check_finished(&now, saved, "a/config.ini", &err), -1);
    CU_ASSERT(tu_contains(err.msg, "run.ini:2: [train] lr = 0.5, but a/config.ini was trained with lr = 0.01"));
    // predict/eval: [train] may differ, the network's settings without parameters not
    CU_ASSERT_EQUAL(resume_check_network(&now, saved, "a/checkpoint.h5", ": why", &err), 0);
    ini_free(&now);
    configure_bn(&now, "[train]\nlr = 0.01\n[batchnorm3d]\nname = bn1\neps = 0.001\n");
    CU_ASSERT_EQUAL(resume_check_network(&now, saved, "a/checkpoint.h5", ": why", &err), -1);
    CU_ASSERT(tu_contains(err.msg, "run.ini:5: [batchnorm3d] bn1 eps = 0.001, but a/checkpoint.h5 was trained with eps = 1e-05: why"));
    ini_free(&now);
    configure_bn(&now, "[train]\nlr = 0.01\n[relu]\n[batchnorm3d]\nname = bn1\n");
    CU_ASSERT_EQUAL(resume_check_network(&now, saved, "a/checkpoint.h5", ": why", &err), -1);
    CU_ASSERT(tu_contains(err.msg, "layer [relu] where it has [batchnorm3d]: why"));
    ini_free(&now);
    ini_free(&old);
    free(saved);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("resume", NULL, NULL);
    CU_add_test(s, "a key newer than the checkpoint, at its default", test_new_default_key);
    CU_add_test(s, "a finished run for cv, a network for predict", test_finished_and_network);
    return tu_run_all();
}
