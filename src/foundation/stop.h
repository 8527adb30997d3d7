/*
 * stop: the one type of a stop request, set by a signal handler or another thread and polled by
 * an event loop or a worker ("stop when you next look").
 *
 * A lock-free C11 atomic int: a plain read (`*stop`) and a plain assignment (`flag = 1`) are
 * sequentially consistent atomic accesses, safe from a signal handler and across threads, which
 * neither `volatile int` nor `volatile sig_atomic_t` is for threads.
 */
#ifndef NS_STOP_H
#define NS_STOP_H

#include <stdatomic.h>

typedef atomic_int ns_stop;

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "ns_stop must be lock-free to be set from a signal handler");

#endif
