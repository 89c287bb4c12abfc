// gradsync.h: gradient all-reduce in buckets that start while backward is still running.
// The flat gradient buffer is cut into buckets of about `bucket_bytes`, from the END of the
// buffer (the last layers' gradients are final first, since backward runs last layer to
// first). After each layer's backward the trainer reports the offset from which all
// gradients are final; every bucket lying wholly beyond it starts a non-blocking sum
// (MPI_Iallreduce) at once, and pending ones are pushed along with MPI_Testall (explicit
// progress: Open MPI progresses non-blocking collectives only inside MPI calls). Buckets
// start in the same order on every rank. With one rank all of this is a no-op.
#ifndef DF_GRADSYNC_H
#define DF_GRADSYNC_H
#include <stddef.h>

typedef struct GradSync GradSync;

// grads (n floats) is the flat gradient buffer; it must stay at the same address.
GradSync *gradsync_create(float *grads, size_t n, size_t bucket_bytes);
// Gradients at offsets [final_from, n) are final: start every bucket inside that range that
// has not started, then make progress on the pending ones. Collective in effect: every rank
// must report the same offsets in the same order.
void gradsync_ready(GradSync *gs, size_t final_from);
// Starts what is left and waits for every bucket: afterwards grads holds the sum over ranks.
void gradsync_finish(GradSync *gs);
// Seconds spent inside gradsync_finish's wait (communication not hidden behind backward),
// and number of buckets; counters accumulate until reset.
double gradsync_wait_seconds(const GradSync *gs);
int gradsync_buckets(const GradSync *gs);
void gradsync_reset_stats(GradSync *gs);
void gradsync_free(GradSync *gs);
#endif
