// test_ini_net.c: the INI parser (line numbers, comments, repeated sections, --set, unknown
// keys), building networks with inferred shapes, and the checkpoint round trip (save, load
// into a fresh network, identical predictions).
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hdf5.h>
#include <math.h>
#include "data/checkpoint.h"
#include "nn/net.h"
#include "nn/optim.h"
#include "run/nonfinite.h"
#include "testutil.h"

static void test_ini_parse(void) {
    Ini ini;
    DfError err;
    const char *text = "; comment\n[data]\nsource = synth:mri3d ; trailing comment\n\n[conv3d]\nout = 4\n"
                       "# another comment\n[relu]\n[conv3d]\nname = second\nout = 8\n";
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, text, "x.ini", &err), 0);
    CU_ASSERT_EQUAL(ini.n, 4);
    CU_ASSERT_STRING_EQUAL(ini.sections[1].name, "conv3d");
    CU_ASSERT_STRING_EQUAL(ini_str(ini_section(&ini, "data"), "source", NULL), "synth:mri3d");
    CU_ASSERT_EQUAL(ini.sections[3].entries[1].line, 11);
    // --set by section header and by layer name
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second.out=16", &err), 0);
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[3], "out")->value, "16");
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "data.n=5", &err), 0);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "nosuch.n=5", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nosuch"));
    // [conv3d] twice: which one is not said -- refused, nothing changed, the layer's name suggested
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "conv3d.out=5", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "--set 'conv3d.out=5': x.ini has 2 [conv3d] sections (lines 5, 9): name the layer "
                                           "meant, e.g. --set second.out=5"));
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[1], "out")->value, "4");
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[3], "out")->value, "16");
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "relu.x=1", &err), 0);  // one [relu]: that one
    // trimmed as a file line is; what a file could not hold is refused
    CU_ASSERT_EQUAL(ini_apply_set(&ini, " Second . out =  32 ", &err), 0);
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[3], "out")->value, "32");
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second.out=32 ; a comment in a file", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "comment"));
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second.out=32\nx", &err), -1);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second.[x=1", &err), -1);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second.;x=1", &err), -1);  // a file line that is a comment
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second.#x=1", &err), -1);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second. =1", &err), -1);
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[3], "out")->value, "32");
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second.out=a;b#c", &err), 0);  // not after a space: part of the value
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[3], "out")->value, "a;b#c");
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "second.out=16", &err), 0);
    // unknown keys: everything unread is reported with its line
    CU_ASSERT_EQUAL(ini_check_unused(&ini, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "--set data.n: unknown key 'n' in [data]"));
    int v;
    CU_ASSERT_EQUAL(ini_int(&ini, &ini.sections[1], "out", 0, 1, 100, &v, &err), 0);
    CU_ASSERT_EQUAL(v, 4);
    CU_ASSERT_EQUAL(ini_int(&ini, &ini.sections[1], "out", 0, 5, 100, &v, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "x.ini:6:"));
    // a number no double (or long) holds is out of range, not "not a number"
    double lr = 7;
    long big;
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "data.lr=1e-320", &err), 0);
    CU_ASSERT_EQUAL(ini_double(&ini, &ini.sections[0], "lr", 0.1, 0.0, 100.0, &lr, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "[data] lr = 1e-320 is out of range: too close to 0 for a double (allowed [0, 100])"));
    CU_ASSERT_EQUAL(lr, 7);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "data.lr=-2e308", &err), 0);
    CU_ASSERT_EQUAL(ini_double(&ini, &ini.sections[0], "lr", 0.1, 0.0, 100.0, &lr, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lr = -2e308 is out of range: too large for a double"));
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "data.lr=1e-3x", &err), 0);
    CU_ASSERT_EQUAL(ini_double(&ini, &ini.sections[0], "lr", 0.1, 0.0, 100.0, &lr, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lr = '1e-3x' is not a number"));
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "data.lr=1e-300", &err), 0);
    CU_ASSERT_EQUAL(ini_double(&ini, &ini.sections[0], "lr", 0.1, 0.0, 100.0, &lr, &err), 0);
    CU_ASSERT_EQUAL(lr, 1e-300);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "data.steps=99999999999999999999", &err), 0);
    CU_ASSERT_EQUAL(ini_long(&ini, &ini.sections[0], "steps", 1, 0, 100, &big, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "steps = 99999999999999999999 is out of range [0, 100]"));
    ini_free(&ini);
    // A UTF-8 byte order mark before the first line (Windows editors write one) is skipped, as
    // the CSV reader skips it; the text is kept as given. Only at the very start.
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "\xEF\xBB\xBF[data]\nsource = synth:mri3d\n", "bom.ini", &err), 0);
    CU_ASSERT_EQUAL(ini.n, 1);
    CU_ASSERT_STRING_EQUAL(ini_str(ini_section(&ini, "data"), "source", NULL), "synth:mri3d");
    CU_ASSERT_EQUAL(ini.sections[0].line, 1);
    CU_ASSERT_EQUAL((unsigned char)ini.text[0], 0xEF);
    ini_free(&ini);
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "\xEF\xBB\xBFn = 4\n", "bom.ini", &err), -1);
    CU_ASSERT_STRING_EQUAL(err.msg, "bom.ini:1: key 'n' outside any [section]");
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[data]\n\xEF\xBB\xBF[train]\n", "bom.ini", &err), -1);
}

// A layer's name may hold '.' (the key follows the last one) and any case; a name that two
// layers share apart from case is refused rather than one of them picked.
static void test_ini_set_names(void) {
    Ini ini;
    DfError err;
    const char *text = "[conv3d]\nname = enc.Conv_1\nout = 4\n[relu]\nname = act\n[linear]\nname = ACT\nout = 2\n";
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, text, "names.ini", &err), 0);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "enc.Conv_1.out=8", &err), 0);
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[0], "out")->value, "8");
    CU_ASSERT_EQUAL(ini_apply_set(&ini, " ENC.conv_1 . out = 16", &err), 0);
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[0], "out")->value, "16");
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "enc.out=8", &err), -1);  // no layer named 'enc'
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no section or layer named 'enc'"));
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "act.out=3", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "two layers named 'act' apart from case"));
    CU_ASSERT_PTR_NULL(ini_entry(&ini.sections[1], "out"));
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[2], "out")->value, "2");
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "enc.Conv_1.=8", &err), -1);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, ".out=8", &err), -1);
    ini_free(&ini);
    // a repeated type with no layer named: how to name one is said
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "[dropout]\n[relu]\n[dropout]\np = 0.2\n", "two.ini", &err), 0);
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "dropout.p=0.5", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "two.ini has 2 [dropout] sections (lines 1, 3): give the layer meant a name "
                                           "(name = NAME) and --set NAME.p=0.5"));
    CU_ASSERT_STRING_EQUAL(ini_entry(&ini.sections[2], "p")->value, "0.2");
    ini_free(&ini);
}

// Defaults the getters apply are recorded: the configuration as run lists them, marked, while
// every presence check still sees the key as absent.
static void test_ini_defaults(void) {
    Ini ini, back;
    DfError err;
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "[train]\nepochs = 3\n", "d.ini", &err), 0);
    IniSection *t = ini_section(&ini, "train");
    int epochs, batch, flag;
    double lr;
    CU_ASSERT_EQUAL(ini_int(&ini, t, "epochs", 1, 0, 100, &epochs, &err), 0);
    CU_ASSERT_EQUAL(ini_int(&ini, t, "batch", 16, 1, 100, &batch, &err), 0);
    CU_ASSERT_EQUAL(ini_double(&ini, t, "lr", 1e-3, 0, 1, &lr, &err), 0);
    CU_ASSERT_EQUAL(ini_bool(&ini, t, "nesterov", 0, &flag, &err), 0);
    CU_ASSERT(epochs == 3 && batch == 16 && lr == 1e-3 && flag == 0);
    CU_ASSERT_PTR_NULL(ini_entry(t, "batch"));          // still absent for presence checks
    CU_ASSERT_PTR_NULL(ini_str(t, "name", NULL));       // no default: nothing recorded
    CU_ASSERT_EQUAL(ini_check_unused(&ini, &err), 0);
    char where[512];
    ini_where(&ini, t, "batch", where, sizeof where);
    CU_ASSERT_STRING_EQUAL(where, "d.ini:1");            // an absent key points at its section
    char *text = ini_serialize(&ini);
    CU_ASSERT(strstr(text, "epochs = 3\n") && strstr(text, "batch = 16  ; default\n") && strstr(text, "lr = 0.001  ; default\n") &&
              strstr(text, "nesterov = false  ; default\n") && strstr(text, INI_RESOLVED_MARK));
    CU_ASSERT_FATAL(ini_parse_string(&back, text, "back", &err) == 0);  // reads back as a config
    CU_ASSERT_STRING_EQUAL(ini_entry(ini_section(&back, "train"), "lr")->value, "0.001");
    // a --set after a default replaces it
    CU_ASSERT_EQUAL(ini_apply_set(&ini, "train.batch=8", &err), 0);
    CU_ASSERT_STRING_EQUAL(ini_entry(t, "batch")->value, "8");
    free(text);
    ini_free(&back);
    ini_free(&ini);
}

static void test_ini_errors(void) {
    Ini ini;
    DfError err;
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[a]\nx = 1\nnot a pair\n", "e.ini", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "e.ini:3:"));
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "x = 1\n", "e.ini", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "outside any [section]"));
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[a\n", "e.ini", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "e.ini:1: malformed section header"));
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[a]\nx = 1\nx = 2\n", "e.ini", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "given twice"));
    // a settings section given twice (any case, even empty) is an error; a layer may repeat
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[data]\nn = 4\n[train]\n[Data ]\nn = 8\n", "e.ini", &err), -1);
    CU_ASSERT_STRING_EQUAL(err.msg, "e.ini:4: section [data] given twice (first at line 1)");
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[train]\n[train]\n", "e.ini", &err), -1);
    CU_ASSERT_STRING_EQUAL(err.msg, "e.ini:2: section [train] given twice (first at line 1)");
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[loss]\n[relu]\n[loss]\n", "e.ini", &err), -1);
    CU_ASSERT_STRING_EQUAL(err.msg, "e.ini:3: section [loss] given twice (first at line 1)");
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[]\n", "e.ini", &err), -1);
    CU_ASSERT_STRING_EQUAL(err.msg, "e.ini:1: empty section name");
    CU_ASSERT_EQUAL(ini_parse_string(&ini, "[relu]\n[relu]\n[debias]\n[debias]\n", "e.ini", &err), 0);
    CU_ASSERT_EQUAL(ini.n, 4);
    ini_free(&ini);
    CU_ASSERT_EQUAL(ini_parse_file(&ini, "/nonexistent/dir/z.ini", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/dir/z.ini"));
}

// A message quoting a huge field keeps its start (file, line) and its end (the problem), one
// line, never a split UTF-8 character; even when the field is the message being rewritten.
static void test_error_long_field(void) {
    char *field = xmalloc(5001);
    memset(field, 'x', 5000);
    field[5000] = '\0';
    field[2500] = '\xc3', field[2501] = '\xa9';  // an é somewhere in the middle
    for (int i = 600; i < 4600; i += 2) field[i] = '\xc3', field[i + 1] = '\xa9';  // and many
    DfError err;
    df_err(&err, "f.csv:3: label '%s' is not a number", field);
    CU_ASSERT(strlen(err.msg) < sizeof err.msg);
    CU_ASSERT_NSTRING_EQUAL(err.msg, "f.csv:3: label 'xxx", 19);
    const char *end = "xxxx' is not a number";
    CU_ASSERT_STRING_EQUAL(err.msg + strlen(err.msg) - strlen(end), end);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, " characters left out]"));
    CU_ASSERT_PTR_NULL(strchr(err.msg, '\n'));
    for (const unsigned char *p = (const unsigned char *)err.msg; *p; p++) {  // no lone half of an é
        if (*p == 0xc3) { CU_ASSERT(p[1] == 0xa9); }
        if (*p == 0xa9) { CU_ASSERT(p > (const unsigned char *)err.msg && p[-1] == 0xc3); }
    }
    df_err(&err, "pack: %s", err.msg);  // wrapped in itself: still both ends
    CU_ASSERT_NSTRING_EQUAL(err.msg, "pack: f.csv:3:", 14);
    CU_ASSERT_STRING_EQUAL(err.msg + strlen(err.msg) - strlen(end), end);
    free(field);
}

static const char *small_net =
    "[train]\nbatch = 4\n"
    "[conv3d]\nname = conv1\nout = 3\nkernel = 3\npad = 1\nstride = 2\n[batchnorm3d]\n[relu]\n"
    "[maxpool3d]\nkernel = 2\n[conv3d]\nout = 4\nkernel = 1,2,2\n[tanh]\n[global_avgpool]\n[flatten]\n"
    "[linear]\nname = fc\nout = 3\n";

static void test_net_shapes(void) {
    Ini ini;
    DfError err;
    Net net;
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, small_net, "n.ini", &err), 0);
    Shape in = { 2, 9, 10, 12 };
    CU_ASSERT_EQUAL_FATAL(net_build(&net, &ini, in, 4, NULL, &err), 0);
    CU_ASSERT_EQUAL(net.n_layers, 9);
    // conv stride 2 pad 1: (9,10,12) -> (5,5,6); pool 2 -> (2,2,3); conv (1,2,2) -> (2,1,2)
    Layer *c1 = net_layer(&net, "conv1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
    CU_ASSERT(c1->out_shape.c == 3 && c1->out_shape.d == 5 && c1->out_shape.h == 5 && c1->out_shape.w == 6);
    Layer *c2 = net_layer(&net, "conv3d2");  // default name: type + count
    CU_ASSERT_PTR_NOT_NULL_FATAL(c2);
    CU_ASSERT(c2->out_shape.c == 4 && c2->out_shape.d == 2 && c2->out_shape.h == 1 && c2->out_shape.w == 2);
    CU_ASSERT_EQUAL(net.out_shape.c, 3);
    size_t expect = (3 * 2 * 27 + 3) + (3 + 3) + (4 * 3 * 4 + 4) + (3 * 4 + 3);
    CU_ASSERT_EQUAL(net.n_params, expect);
    CU_ASSERT_EQUAL(net.n_state, 6);  // BN running mean and var
    CU_ASSERT_EQUAL(net_layer_output_index(&net, "fc"), 9);
    net_free(&net);
    ini_free(&ini);

    // An impossible shape names the file and the layer's line.
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "[conv3d]\nout = 2\nkernel = 5\n", "bad.ini", &err), 0);
    Shape tiny = { 1, 3, 3, 3 };
    CU_ASSERT_EQUAL(net_build(&net, &ini, tiny, 2, NULL, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad.ini:"));
    ini_free(&ini);
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "[data]\nx = 1\n", "empty.ini", &err), 0);
    CU_ASSERT_EQUAL(net_build(&net, &ini, tiny, 2, NULL, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no layers"));
    ini_free(&ini);
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "[relu]\nname = a\n[tanh]\nname = a\n", "dup.ini", &err), 0);
    CU_ASSERT_EQUAL(net_build(&net, &ini, tiny, 2, NULL, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "used twice"));
    ini_free(&ini);
    // names that --set, --features or a checkpoint could not read back whole
    const char *bad[] = { "a,b", "a b", "a/b", "a=b", "" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[64];
        snprintf(text, sizeof text, "[relu]\nname = %s\n", bad[i]);
        CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, text, "name.ini", &err), 0);
        CU_ASSERT_EQUAL(net_build(&net, &ini, tiny, 2, NULL, &err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "name.ini:2: [relu] name = "));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "letters, digits, '_', '-' or '.'"));
        ini_free(&ini);
    }
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, "[relu]\nname = enc.Relu-1_a\n", "name.ini", &err), 0);
    CU_ASSERT_EQUAL(net_build(&net, &ini, tiny, 2, NULL, &err), 0);
    net_free(&net);
    ini_free(&ini);
}

static void test_checkpoint_round_trip(void) {
    Ini ini;
    DfError err;
    Net a, b;
    Shape in = { 2, 9, 10, 12 };
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, small_net, "n.ini", &err), 0);
    CU_ASSERT_EQUAL_FATAL(net_build(&a, &ini, in, 4, NULL, &err), 0);
    CU_ASSERT_EQUAL_FATAL(net_build(&b, &ini, in, 4, NULL, &err), 0);
    net_init(&a, 11);
    net_init(&b, 99);
    size_t n = 4 * shape_numel(in);
    float *x = df_alloc_floats(n);
    Rng rng;
    rng_seed(&rng, 5);
    tu_fill_uniform(x, n, -1, 1, &rng);
    // one training step so BN running stats and optimiser state are not at their defaults
    OptConfig oc = { .kind = OPT_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
    Optimizer oa, ob;
    optim_init(&oa, &oc, a.n_params);
    optim_init(&ob, &oc, b.n_params);
    Batch bx = batch_of_images(x, 4);
    const float *y = net_forward(&a, &bx, 1);
    float *dy = df_alloc_floats(4 * 3);
    for (int i = 0; i < 12; i++) dy[i] = y[i];
    net_zero_grad(&a);
    net_backward(&a, &bx, dy);
    optim_step(&oa, a.params, a.grads, 1e-2);
    float *ya = df_alloc_floats(12);
    memcpy(ya, net_forward(&a, &bx, 0), 12 * sizeof(float));

    char dir[] = "/tmp/df-ckpt-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/c.h5", dir);
    TrainState ts = { .epoch = 3, .step = 42 };
    rng_seed(&ts.rng, 77);
    CU_ASSERT_EQUAL_FATAL(checkpoint_save(path, ini.text, &a, &oa, &ts, &err), 0);
    TrainState tb = { 0 };
    CU_ASSERT_EQUAL_FATAL(checkpoint_load(path, &b, &ob, &tb, &err), 0);
    CU_ASSERT_EQUAL(tb.epoch, 3);
    CU_ASSERT_EQUAL(tb.step, 42);
    CU_ASSERT_EQUAL(memcmp(&tb.rng, &ts.rng, sizeof ts.rng), 0);
    CU_ASSERT_EQUAL(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(a.state, b.state, a.n_state * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(oa.m, ob.m, a.n_params * sizeof(float)), 0);
    CU_ASSERT_EQUAL(ob.step, oa.step);
    const float *yb = net_forward(&b, &bx, 0);
    CU_ASSERT_EQUAL(memcmp(ya, yb, 12 * sizeof(float)), 0);  // identical predictions
    char *text = checkpoint_read_config(path, &err);
    CU_ASSERT_PTR_NOT_NULL(text);
    if (text) CU_ASSERT_STRING_EQUAL(text, ini.text);
    free(text);

    // Never written with a NaN in it; and one that holds a NaN (written by an older version or
    // another program: poked in here through HDF5) is refused by name, for predict and resume.
    float keep = a.state[0];
    a.state[0] = NAN;
    char path2[300];
    snprintf(path2, sizeof path2, "%s/nan.h5", dir);
    CU_ASSERT_EQUAL(checkpoint_save(path2, ini.text, &a, &oa, &ts, &err), -1);
    CU_ASSERT(tu_contains(err.msg, "not written") && tu_contains(err.msg, "running_mean[0] = nan"));
    CU_ASSERT(access(path2, F_OK) != 0);
    a.state[0] = keep;
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    char ds_name[200];
    snprintf(ds_name, sizeof ds_name, "params/%s/%s", a.layers[0].name, a.layers[0].params_info[0].name);
    hid_t d = H5Dopen2(f, ds_name, H5P_DEFAULT);
    float *w = df_alloc_floats(a.layers[0].params_info[0].count);
    CU_ASSERT(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    w[5] = INFINITY;
    CU_ASSERT(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    CU_ASSERT_EQUAL(checkpoint_load(path, &b, NULL, NULL, &err), -1);
    CU_ASSERT(tu_contains(err.msg, ds_name) && tu_contains(err.msg, "[5] = inf") && tu_contains(err.msg, "not finite"));
    free(w);
    unlink(path);
    rmdir(dir);
    free(x); free(dy); free(ya);
    optim_free(&oa); optim_free(&ob);
    net_free(&a); net_free(&b);
    ini_free(&ini);
}

// A NaN voxel is hidden from the loss by BatchNorm + ReLU (relu(NaN) = 0: the output and the
// loss stay finite) but not from the gradients; the diagnosis names the input sample.
static void test_nonfinite_found_where_it_starts(void) {
    Ini ini;
    DfError err;
    Net net;
    const char *text = "[conv3d]\nout = 3\npad = 1\n[batchnorm3d]\n[relu]\n[maxpool3d]\nkernel = 2\n"
                       "[flatten]\n[linear]\nout = 2\n";
    Shape in = { 1, 4, 4, 4 };
    CU_ASSERT_EQUAL_FATAL(ini_parse_string(&ini, text, "nf.ini", &err), 0);
    CU_ASSERT_EQUAL_FATAL(net_build(&net, &ini, in, 2, NULL, &err), 0);
    net_init(&net, 3);
    Rng rng;
    rng_seed(&rng, 8);
    float *x = tu_rand(2 * 64, -1, 1, &rng), dout[4] = { 0.1f, -0.2f, 0.3f, 0.05f };
    x[64 + 21] = NAN;  // sample 1
    int index[2] = { 4, 7 };
    char *subjects[8] = { "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7" };
    Batch b = batch_of_images(x, 2);
    b.index = index;
    const float *y = net_forward(&net, &b, 1);
    CU_ASSERT(df_first_nonfinite(y, 4) < 0);  // hidden from the output
    net_zero_grad(&net);
    net_backward(&net, &b, dout);
    CU_ASSERT(df_first_nonfinite(net.grads, net.n_params) >= 0);  // not from the gradients
    char what[256], msg[512];
    CU_ASSERT(net_find_nonfinite(&net, 1, what, sizeof what) && tu_contains(what, "the gradient of params/"));
    nonfinite_diagnose(&net, &b, subjects, msg, sizeof msg);
    CU_ASSERT(tu_contains(msg, "the input: sample 7 of the data (subject s7) has a NaN or infinite voxel"));
    free(x);
    net_free(&net);
    ini_free(&ini);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("ini_net", NULL, NULL);
    CU_add_test(s, "INI parsing, --set, unknown keys", test_ini_parse);
    CU_add_test(s, "--set on layer names with '.' and any case", test_ini_set_names);
    CU_add_test(s, "INI syntax errors name file and line", test_ini_errors);
    CU_add_test(s, "INI defaults are recorded as run", test_ini_defaults);
    CU_add_test(s, "a message quoting a huge field keeps its end", test_error_long_field);
    CU_add_test(s, "network shapes inferred layer by layer", test_net_shapes);
    CU_add_test(s, "checkpoint round trip gives identical predictions", test_checkpoint_round_trip);
    CU_add_test(s, "non-finite values are found where they start", test_nonfinite_found_where_it_starts);
    return tu_run_all();
}
