/* soak.inprocess.probes._sampler: a sampling allocation tracer for leaksoak.
 *
 * Hooks the PYMEM_DOMAIN_MEM and PYMEM_DOMAIN_OBJ allocators (chaining to whatever was
 * installed before), samples allocations with a Poisson process over allocated bytes (mean
 * interval R), captures the Python stack of a sampled allocation only, and tracks frees of
 * sampled blocks by pointer. collect() returns, per stack, Horvitz-Thompson estimates of the
 * live bytes and blocks: a block of s bytes is sampled with probability p = 1 - exp(-s/R), so
 * s/p and 1/p are its unbiased contributions.
 *
 * Rules the hooks keep (each learnt the hard way by someone):
 *  - a hook never calls into Python: no object is created or released, no Python code or
 *    garbage collection can run; tables are allocated with the C library's allocator;
 *  - both domains are called with the GIL held, so the GIL serialises the hooks and the
 *    collector; the reentrancy guard is per thread, so a nested allocation made by our own
 *    sampling code (or by collect) is never sampled, whatever other threads do;
 *  - the free path runs on every free: it reads one bit of a small filter (8 KiB, so that it
 *    stays in the L1 cache beside the interpreter's own data) and looks the pointer up only
 *    when the filter says it may be sampled;
 *  - after fork(), the child reseeds its sampler (the tables stay: the child has the same heap).
 * All policy (which frames are leaksoak's, what a site is) lives in Python.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(Py_GIL_DISABLED)
#  define SAMPLER_UNSUPPORTED "the sampled tracer needs the GIL; this is a free-threaded build (use --tracer exact)"
#elif PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030B0000
#  include <frameobject.h>
#elif PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
#  ifndef Py_BUILD_CORE
#    define Py_BUILD_CORE 1
#  endif
#  include "internal/pycore_frame.h"
#else
#  define SAMPLER_UNSUPPORTED "the sampled tracer supports CPython 3.10 to 3.13 (use --tracer exact)"
#endif

#define MAX_FRAMES 128
#define FILTER_BITS 16
#define FILTER_SIZE (1u << FILTER_BITS)
#define MIN_TABLE 1024

#ifndef SAMPLER_UNSUPPORTED

/* ---------------------------------------------------------------- tables */

typedef struct {
    PyCodeObject *code; /* strong reference, taken in a hook (an incref only), dropped in collect/stop */
    int lasti;          /* byte offset of the instruction: a line lookup scans the line table,
                           which costs a hook far too much, so lines are resolved in collect() */
} frame_t;

typedef struct {
    uint64_t hash;
    uint32_t nframe;
    uint32_t live;      /* live sampled blocks allocated here */
    int *lines;         /* nframe line numbers, resolved by collect() on first sight; or NULL */
    frame_t frames[];   /* allocation frame first */
} stack_t;

typedef struct {
    uintptr_t ptr;      /* 0: empty slot */
    size_t size;
    uint32_t stack;     /* index into stacks */
} block_t;

static struct {
    int active;                 /* sampling (hooks may stay in a chain while inactive) */
    int installed[2];           /* our hook is somewhere in this domain's chain */
    PyMemAllocatorEx prev[2];   /* what our hook chains to, per domain */
    double interval;            /* R, bytes */
    int max_frames;
    int64_t countdown;          /* bytes until the next sample */
    uint64_t rng;

    stack_t **stacks;
    size_t nstacks, stacks_cap;
    uint32_t *stack_index;      /* open addressing: stack number + 1, 0 empty */
    size_t stack_index_cap;

    block_t *blocks;
    size_t nblocks, blocks_cap;
    uint64_t filter[FILTER_SIZE / 64]; /* slot has a block: what the free path reads */
    uint8_t filter_count[FILTER_SIZE]; /* blocks per filter slot, saturating at 255 (cold) */

    uint64_t samples_total;
    uint64_t dropped;           /* samples lost because a table could not grow */
} S;

static _Thread_local int guard;

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* A block's 16-byte granule within its MiB of address space, that MiB's number folded in: not a
 * hash that scatters, so that the blocks of one pool (which a program frees together) share a
 * cache line of the filter, as they share their own; the fold keeps the blocks at one offset of
 * different MiBs (say, of pymalloc's arenas) apart. */
static inline size_t filter_slot(uintptr_t ptr)
{
    return (size_t)(((ptr >> 4) ^ (ptr >> (4 + FILTER_BITS))) & (FILTER_SIZE - 1));
}

static inline int filter_has(size_t slot)
{
    return (int)((S.filter[slot / 64] >> (slot % 64)) & 1);
}

static void filter_add(uintptr_t ptr)
{
    size_t slot = filter_slot(ptr);
    if (S.filter_count[slot] == 0) {
        S.filter[slot / 64] |= (uint64_t)1 << (slot % 64);
    }
    if (S.filter_count[slot] != 255) {
        S.filter_count[slot]++;
    }
}

static void filter_remove(uintptr_t ptr)
{
    size_t slot = filter_slot(ptr);
    /* a saturated slot stays set: it only costs lookups */
    if (S.filter_count[slot] != 255 && --S.filter_count[slot] == 0) {
        S.filter[slot / 64] &= ~((uint64_t)1 << (slot % 64));
    }
}

static inline size_t block_home(uintptr_t ptr, size_t cap)
{
    return (size_t)(mix64((uint64_t)ptr) & (cap - 1));
}

static void seed_rng(uint64_t extra)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    S.rng = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ ((uint64_t)getpid() << 16) ^ extra);
    if (S.rng == 0) {
        S.rng = 0x9E3779B97F4A7C15ULL;
    }
}

static inline uint64_t next_random(void)
{
    /* xorshift64* */
    uint64_t x = S.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    S.rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int64_t draw_countdown(void)
{
    /* Bytes up to and including the next sampled one. Each byte is sampled independently with
     * q = 1 - exp(-1/R), so the gap is geometric: the ceiling of an exponential of mean R. Then
     * a block of s bytes holds a sampled byte with p = 1 - exp(-s/R) exactly, the probability
     * collect() weighs it by (a floor here would double the chance of the first byte after a
     * sample, and bias small blocks upwards). */
    double u = ((double)(next_random() >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double gap = ceil(-log(u) * S.interval);
    if (gap < 1.0) {
        gap = 1.0;
    }
    if (gap > 4.0e18) {
        gap = 4.0e18;
    }
    return (int64_t)gap;
}

static int grow_blocks(void)
{
    size_t cap = S.blocks_cap ? S.blocks_cap * 2 : MIN_TABLE;
    block_t *fresh = calloc(cap, sizeof(block_t));
    if (fresh == NULL) {
        return -1;
    }
    for (size_t i = 0; i < S.blocks_cap; i++) {
        block_t *b = &S.blocks[i];
        if (b->ptr == 0) {
            continue;
        }
        size_t j = block_home(b->ptr, cap);
        while (fresh[j].ptr != 0) {
            j = (j + 1) & (cap - 1);
        }
        fresh[j] = *b;
    }
    free(S.blocks);
    S.blocks = fresh;
    S.blocks_cap = cap;
    return 0;
}

static block_t *find_block(uintptr_t ptr)
{
    if (S.blocks_cap == 0) {
        return NULL;
    }
    size_t i = block_home(ptr, S.blocks_cap);
    for (;;) {
        block_t *b = &S.blocks[i];
        if (b->ptr == ptr) {
            return b;
        }
        if (b->ptr == 0) {
            return NULL;
        }
        i = (i + 1) & (S.blocks_cap - 1);
    }
}

/* Linear probing with backward-shift deletion: no tombstones, so lookups of pointers that are
 * not sampled (nearly all frees that pass the filter by collision) stop at the first hole. */
static void delete_block(block_t *b)
{
    size_t cap = S.blocks_cap;
    size_t hole = (size_t)(b - S.blocks);
    size_t i = hole;
    for (;;) {
        i = (i + 1) & (cap - 1);
        block_t *next = &S.blocks[i];
        if (next->ptr == 0) {
            break;
        }
        size_t home = block_home(next->ptr, cap);
        /* can `next` move into the hole? only if its home is not cyclically in (hole, i] */
        int in_range = (hole <= i) ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!in_range) {
            S.blocks[hole] = *next;
            hole = i;
        }
    }
    S.blocks[hole].ptr = 0;
    S.nblocks--;
}

static void forget_block(uintptr_t ptr)
{
    block_t *b = find_block(ptr);
    if (b == NULL) {
        return;
    }
    filter_remove(ptr);
    S.stacks[b->stack]->live--;
    delete_block(b);
}

static int grow_stack_index(void)
{
    size_t cap = S.stack_index_cap ? S.stack_index_cap * 2 : MIN_TABLE;
    uint32_t *fresh = calloc(cap, sizeof(uint32_t));
    if (fresh == NULL) {
        return -1;
    }
    for (size_t n = 0; n < S.nstacks; n++) {
        size_t j = (size_t)(S.stacks[n]->hash & (cap - 1));
        while (fresh[j] != 0) {
            j = (j + 1) & (cap - 1);
        }
        fresh[j] = (uint32_t)(n + 1);
    }
    free(S.stack_index);
    S.stack_index = fresh;
    S.stack_index_cap = cap;
    return 0;
}

static uint64_t hash_frames(const frame_t *frames, int nframe)
{
    uint64_t h = 0x84222325cbf29ce4ULL ^ (uint64_t)nframe;
    for (int i = 0; i < nframe; i++) {
        h = mix64(h ^ (uint64_t)(uintptr_t)frames[i].code);
        h = mix64(h ^ (uint64_t)(uint32_t)frames[i].lasti);
    }
    return h;
}

static int same_frames(const frame_t *a, const frame_t *b, int nframe)
{
    /* field by field: a frame_t has padding, which memcmp would compare too */
    for (int i = 0; i < nframe; i++) {
        if (a[i].code != b[i].code || a[i].lasti != b[i].lasti) {
            return 0;
        }
    }
    return 1;
}

/* The stack's number, interning it on first sight; -1 if a table cannot grow. */
static long intern_stack(const frame_t *frames, int nframe)
{
    if ((S.nstacks + 1) * 2 > S.stack_index_cap && grow_stack_index() < 0) {
        return -1;
    }
    uint64_t h = hash_frames(frames, nframe);
    size_t i = (size_t)(h & (S.stack_index_cap - 1));
    for (;;) {
        uint32_t entry = S.stack_index[i];
        if (entry == 0) {
            break;
        }
        stack_t *st = S.stacks[entry - 1];
        if (st->hash == h && st->nframe == (uint32_t)nframe && same_frames(st->frames, frames, nframe)) {
            return (long)(entry - 1);
        }
        i = (i + 1) & (S.stack_index_cap - 1);
    }
    if (S.nstacks == S.stacks_cap) {
        size_t cap = S.stacks_cap ? S.stacks_cap * 2 : MIN_TABLE;
        stack_t **fresh = realloc(S.stacks, cap * sizeof(stack_t *));
        if (fresh == NULL) {
            return -1;
        }
        S.stacks = fresh;
        S.stacks_cap = cap;
    }
    stack_t *st = malloc(sizeof(stack_t) + (size_t)nframe * sizeof(frame_t));
    if (st == NULL) {
        return -1;
    }
    st->hash = h;
    st->nframe = (uint32_t)nframe;
    st->live = 0;
    st->lines = NULL;
    for (int k = 0; k < nframe; k++) {
        st->frames[k] = frames[k];
        Py_INCREF(frames[k].code); /* a count only: nothing is allocated or run */
    }
    S.stacks[S.nstacks] = st;
    S.stack_index[i] = (uint32_t)(S.nstacks + 1);
    return (long)S.nstacks++;
}

/* ---------------------------------------------------------------- stacks */

static int capture_frames(frame_t *out, int limit)
{
    PyThreadState *tstate = _PyThreadState_UncheckedGet();
    int n = 0;
    if (tstate == NULL) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030B0000
    for (PyFrameObject *f = tstate->frame; f != NULL && n < limit; f = f->f_back) {
        out[n].code = f->f_code;
        out[n].lasti = f->f_lasti * (int)sizeof(_Py_CODEUNIT);
        n++;
    }
#else
#  if PY_VERSION_HEX < 0x030D0000
    if (tstate->cframe == NULL) {
        return 0;
    }
    struct _PyInterpreterFrame *f = tstate->cframe->current_frame;
#  else
    struct _PyInterpreterFrame *f = tstate->current_frame;
#  endif
    for (; f != NULL && n < limit; f = f->previous) {
        if (_PyFrame_IsIncomplete(f)) {
            continue;
        }
#  if PY_VERSION_HEX < 0x030C0000
        PyCodeObject *code = f->f_code;
        int lasti = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
#  elif PY_VERSION_HEX < 0x030D0000
        PyCodeObject *code = f->f_code;
        int lasti = PyUnstable_InterpreterFrame_GetLasti(f);
#  else
        if (f->f_executable == NULL || !PyCode_Check(f->f_executable)) {
            continue;
        }
        PyCodeObject *code = (PyCodeObject *)f->f_executable;
        int lasti = PyUnstable_InterpreterFrame_GetLasti(f);
#  endif
        out[n].code = code;
        out[n].lasti = lasti;
        n++;
    }
#endif
    return n;
}

/* ---------------------------------------------------------------- hooks */

static void sample(void *ptr, size_t size)
{
    frame_t frames[MAX_FRAMES];
    guard = 1;
    S.countdown = draw_countdown();
    S.samples_total++;
    int nframe = capture_frames(frames, S.max_frames);
    long stack = intern_stack(frames, nframe);
    if (stack < 0 || ((S.nblocks + 1) * 2 > S.blocks_cap && grow_blocks() < 0)) {
        S.dropped++;
        guard = 0;
        return;
    }
    uintptr_t key = (uintptr_t)ptr;
    block_t *b = find_block(key);
    if (b != NULL) {
        /* a block we never saw freed (released through a path we do not hook): replace it */
        S.stacks[b->stack]->live--;
    }
    else {
        size_t i = block_home(key, S.blocks_cap);
        while (S.blocks[i].ptr != 0) {
            i = (i + 1) & (S.blocks_cap - 1);
        }
        b = &S.blocks[i];
        b->ptr = key;
        S.nblocks++;
        filter_add(key);
    }
    b->size = size;
    b->stack = (uint32_t)stack;
    S.stacks[stack]->live++;
    guard = 0;
}

#define NEVER ((int64_t)1 << 62) /* the countdown while inactive: no allocation reaches the slow path */

/* What a block of `size` bytes takes off the countdown: zero-size blocks count as one byte, so
 * that they can be sampled (and estimated) too. */
static inline int64_t charge(size_t size)
{
    return (int64_t)(size ? size : 1);
}

/* The countdown ran out at this block (already allocated, already charged). */
static void __attribute__((noinline)) countdown_out(void *ptr, size_t size)
{
    if (!S.active) {
        S.countdown = NEVER; /* a hook left in a chain by stop(): pass through for good */
        return;
    }
    if (guard) {
        S.countdown += charge(size); /* our own allocation (sampling code or collect): not sampled */
        return;
    }
    sample(ptr, size);
}

static inline void maybe_sample(void *ptr, size_t size)
{
    S.countdown -= charge(size);
    if (S.countdown <= 0) {
        countdown_out(ptr, size);
    }
}

static inline int may_be_sampled(void *ptr)
{
    return ptr != NULL && filter_has(filter_slot((uintptr_t)ptr));
}

/* The fast paths charge the countdown and tail-call the allocator underneath: no frame of their
 * own, one load, one store and one branch more than the allocator alone. Only a block at which
 * the countdown runs out (about one per `interval` bytes), or the free of a block the filter
 * cannot rule out, takes a slow path. */

static void *__attribute__((noinline)) malloc_slow(PyMemAllocatorEx *prev, size_t size)
{
    void *ptr = prev->malloc(prev->ctx, size);
    if (ptr != NULL) {
        countdown_out(ptr, size);
    }
    return ptr;
}

static void *hook_malloc(void *ctx, size_t size)
{
    PyMemAllocatorEx *prev = ctx;
    int64_t left = S.countdown - charge(size);
    S.countdown = left;
    if (left > 0) {
        return prev->malloc(prev->ctx, size);
    }
    return malloc_slow(prev, size);
}

static void *__attribute__((noinline)) calloc_slow(PyMemAllocatorEx *prev, size_t nelem, size_t elsize)
{
    void *ptr = prev->calloc(prev->ctx, nelem, elsize);
    if (ptr != NULL) {
        countdown_out(ptr, nelem * elsize); /* no overflow: checked by the caller */
    }
    return ptr;
}

static void *hook_calloc(void *ctx, size_t nelem, size_t elsize)
{
    PyMemAllocatorEx *prev = ctx;
    size_t size;
    if (__builtin_mul_overflow(nelem, elsize, &size)) {
        return prev->calloc(prev->ctx, nelem, elsize); /* it fails */
    }
    int64_t left = S.countdown - charge(size);
    S.countdown = left;
    if (left > 0) {
        return prev->calloc(prev->ctx, nelem, elsize);
    }
    return calloc_slow(prev, nelem, elsize);
}

static void *__attribute__((noinline)) realloc_slow(PyMemAllocatorEx *prev, void *old, size_t size)
{
    void *ptr = prev->realloc(prev->ctx, old, size);
    if (ptr == NULL) {
        return NULL; /* the old block is untouched, sampled or not */
    }
    /* the resized block is a new allocation of `size` bytes at the current line */
    if (may_be_sampled(old)) {
        forget_block((uintptr_t)old);
    }
    maybe_sample(ptr, size);
    return ptr;
}

static void *hook_realloc(void *ctx, void *old, size_t size)
{
    PyMemAllocatorEx *prev = ctx;
    int64_t left = S.countdown - charge(size);
    if (left > 0 && !may_be_sampled(old)) {
        S.countdown = left;
        return prev->realloc(prev->ctx, old, size);
    }
    return realloc_slow(prev, old, size);
}

static void __attribute__((noinline)) free_slow(PyMemAllocatorEx *prev, void *ptr)
{
    forget_block((uintptr_t)ptr);
    prev->free(prev->ctx, ptr);
}

static void hook_free(void *ctx, void *ptr)
{
    /* the hottest path there is: one byte of the filter, then a tail call */
    PyMemAllocatorEx *prev = ctx;
    if (may_be_sampled(ptr)) {
        free_slow(prev, ptr);
        return;
    }
    prev->free(prev->ctx, ptr);
}

static const PyMemAllocatorDomain DOMAINS[2] = {PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};

static int is_our_hook(const PyMemAllocatorEx *a)
{
    return a->malloc == hook_malloc && a->free == hook_free;
}

/* ---------------------------------------------------------------- state */

static void clear_tables(void)
{
    /* called with the GIL and the guard held, hooks inactive */
    free(S.blocks);
    S.blocks = NULL;
    S.nblocks = S.blocks_cap = 0;
    memset(S.filter, 0, sizeof(S.filter));
    memset(S.filter_count, 0, sizeof(S.filter_count));
    free(S.stack_index);
    S.stack_index = NULL;
    S.stack_index_cap = 0;
}

/* Drop stacks with no live block, renumbering the rest, once at least MIN_TABLE and half of
 * them are dead. Returns the dropped stacks, whose code references the caller releases once no
 * table is being walked (a release may run Python). */
static stack_t **compact_stacks(size_t *ndropped)
{
    size_t dead = 0;
    for (size_t n = 0; n < S.nstacks; n++) {
        dead += S.stacks[n]->live == 0;
    }
    *ndropped = 0;
    if (dead < MIN_TABLE || dead * 2 < S.nstacks) {
        return NULL;
    }
    stack_t **dropped = malloc(dead * sizeof(stack_t *));
    uint32_t *renumber = malloc(S.nstacks * sizeof(uint32_t));
    uint32_t *index = calloc(S.stack_index_cap, sizeof(uint32_t));
    if (dropped == NULL || renumber == NULL || index == NULL) {
        free(dropped);
        free(renumber);
        free(index);
        return NULL; /* try again next time */
    }
    size_t kept = 0;
    for (size_t n = 0; n < S.nstacks; n++) {
        stack_t *st = S.stacks[n];
        if (st->live == 0) {
            dropped[(*ndropped)++] = st;
            renumber[n] = UINT32_MAX;
            continue;
        }
        renumber[n] = (uint32_t)kept;
        S.stacks[kept] = st;
        size_t j = (size_t)(st->hash & (S.stack_index_cap - 1));
        while (index[j] != 0) {
            j = (j + 1) & (S.stack_index_cap - 1);
        }
        index[j] = (uint32_t)(kept + 1);
        kept++;
    }
    for (size_t i = 0; i < S.blocks_cap; i++) {
        if (S.blocks[i].ptr != 0) {
            S.blocks[i].stack = renumber[S.blocks[i].stack];
        }
    }
    free(renumber);
    free(S.stack_index);
    S.stack_index = index;
    S.nstacks = kept;
    return dropped;
}

static void release_stacks(stack_t **stacks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (uint32_t k = 0; k < stacks[i]->nframe; k++) {
            Py_DECREF(stacks[i]->frames[k].code);
        }
        free(stacks[i]->lines);
        free(stacks[i]);
    }
}

static void atfork_child(void)
{
    /* the forking thread's guard is clear (fork is not called from a hook); other threads are
     * gone with theirs. A child must not draw the same samples as its parent. */
    guard = 0;
    seed_rng((uint64_t)getppid());
}

/* ---------------------------------------------------------------- module functions */

static PyObject *sampler_start(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"interval", "frames", NULL};
    long long interval;
    int frames;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Li", keywords, &interval, &frames)) {
        return NULL;
    }
    if (interval < 1) {
        PyErr_SetString(PyExc_ValueError, "interval must be at least 1 byte");
        return NULL;
    }
    if (frames < 1 || frames > MAX_FRAMES) {
        PyErr_Format(PyExc_ValueError, "frames must be between 1 and %d", MAX_FRAMES);
        return NULL;
    }
    if (S.active) {
        PyErr_SetString(PyExc_RuntimeError, "the sampled tracer is already running");
        return NULL;
    }
    guard = 1;
    S.interval = (double)interval;
    S.max_frames = frames;
    S.samples_total = 0;
    S.dropped = 0;
    if (S.rng == 0) {
        seed_rng((uint64_t)(uintptr_t)&S);
    }
    S.countdown = draw_countdown();
    for (int d = 0; d < 2; d++) {
        if (S.installed[d]) {
            continue; /* left in a chain by an earlier stop(): it passes through until active */
        }
        PyMemAllocatorEx ours = {&S.prev[d], hook_malloc, hook_calloc, hook_realloc, hook_free};
        PyMem_GetAllocator(DOMAINS[d], &S.prev[d]);
        PyMem_SetAllocator(DOMAINS[d], &ours);
        S.installed[d] = 1;
    }
    S.active = 1;
    guard = 0;
    Py_RETURN_NONE;
}

static PyObject *sampler_stop(PyObject *self, PyObject *unused)
{
    if (!S.active && S.nstacks == 0 && S.blocks == NULL) {
        Py_RETURN_NONE;
    }
    guard = 1;
    S.active = 0;
    S.countdown = NEVER;
    for (int d = 0; d < 2; d++) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(DOMAINS[d], &current);
        if (S.installed[d] && is_our_hook(&current)) {
            PyMem_SetAllocator(DOMAINS[d], &S.prev[d]);
            S.installed[d] = 0;
        }
        /* else another hook (tracemalloc, say) chains to ours: ours stays and passes through */
    }
    clear_tables();
    stack_t **stacks = S.stacks;
    size_t nstacks = S.nstacks;
    S.stacks = NULL;
    S.nstacks = S.stacks_cap = 0;
    guard = 0;
    release_stacks(stacks, nstacks);
    free(stacks);
    Py_RETURN_NONE;
}

static PyObject *sampler_is_tracing(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(S.active);
}

static PyObject *stats_dict(void)
{
    size_t stack_bytes = 0;
    for (size_t n = 0; n < S.nstacks; n++) {
        stack_bytes += sizeof(stack_t) + S.stacks[n]->nframe * sizeof(frame_t);
    }
    size_t memory = sizeof(S) + S.blocks_cap * sizeof(block_t) + S.stack_index_cap * sizeof(uint32_t) +
                    S.stacks_cap * sizeof(stack_t *) + stack_bytes;
    return Py_BuildValue(
        "{s:d,s:i,s:K,s:K,s:n,s:n,s:n}",
        "interval", S.interval, "frames", S.max_frames,
        "samples_total", (unsigned long long)S.samples_total, "dropped", (unsigned long long)S.dropped,
        "live_samples", (Py_ssize_t)S.nblocks, "stacks", (Py_ssize_t)S.nstacks, "memory_bytes", (Py_ssize_t)memory);
}

static PyObject *sampler_stats(PyObject *self, PyObject *unused)
{
    return stats_dict();
}

typedef struct {
    double bytes, blocks;
    uint32_t samples;
} estimate_t;

/* collect() -> (sites, stats): sites is a list of (frames, est_bytes, est_blocks, samples),
 * frames a tuple of (filename, line), allocation frame first. */
static PyObject *sampler_collect(PyObject *self, PyObject *unused)
{
    if (!S.active) {
        PyErr_SetString(PyExc_RuntimeError, "the sampled tracer is not running");
        return NULL;
    }
    /* Phase 1, no Python object touched: estimates per stack, and a private copy of the live
     * stacks (with references) so phase 2 may run Python (a collection) while hooks go on. */
    guard = 1;
    size_t ndropped = 0;
    stack_t **dropped = compact_stacks(&ndropped);
    size_t nstacks = S.nstacks;
    estimate_t *est = nstacks ? calloc(nstacks, sizeof(estimate_t)) : NULL;
    stack_t **copies = nstacks ? calloc(nstacks, sizeof(stack_t *)) : NULL;
    if (nstacks && (est == NULL || copies == NULL)) {
        free(est);
        free(copies);
        guard = 0;
        if (dropped != NULL) {
            release_stacks(dropped, ndropped);
            free(dropped);
        }
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < S.blocks_cap; i++) {
        block_t *b = &S.blocks[i];
        if (b->ptr == 0) {
            continue;
        }
        double size = (double)b->size;
        double p = -expm1(-(size > 0 ? size : 1.0) / S.interval);
        estimate_t *e = &est[b->stack];
        e->bytes += size / p;
        e->blocks += 1.0 / p;
        e->samples++;
    }
    size_t live_stacks = 0;
    for (size_t n = 0; n < nstacks; n++) {
        if (est[n].samples == 0) {
            continue;
        }
        stack_t *st = S.stacks[n];
        if (st->lines == NULL && st->nframe > 0) {
            /* PyCode_Addr2Line reads the code's line table: no allocation, no Python */
            st->lines = malloc(st->nframe * sizeof(int));
            if (st->lines == NULL) {
                est[n].samples = 0;
                continue;
            }
            for (uint32_t k = 0; k < st->nframe; k++) {
                st->lines[k] = PyCode_Addr2Line(st->frames[k].code, st->frames[k].lasti);
            }
        }
        stack_t *copy = malloc(sizeof(stack_t) + st->nframe * sizeof(frame_t));
        int *lines = st->nframe ? malloc(st->nframe * sizeof(int)) : NULL;
        if (copy == NULL || (st->nframe && lines == NULL)) {
            free(copy);
            free(lines);
            est[n].samples = 0;
            continue;
        }
        memcpy(copy, st, sizeof(stack_t) + st->nframe * sizeof(frame_t));
        if (st->nframe) {
            memcpy(lines, st->lines, st->nframe * sizeof(int));
        }
        copy->lines = lines;
        for (uint32_t k = 0; k < copy->nframe; k++) {
            Py_INCREF(copy->frames[k].code);
        }
        copies[n] = copy;
        live_stacks++;
    }
    guard = 0;

    /* Phase 2: Python objects. Allocations here are sampled as anyone's would be. */
    PyObject *result = NULL;
    PyObject *sites = PyList_New(0);
    PyObject *frame_cache = PyDict_New(); /* (code, line) -> (filename, line), shared tuples */
    if (sites == NULL || frame_cache == NULL) {
        goto done;
    }
    for (size_t n = 0; n < nstacks; n++) {
        stack_t *st = copies[n];
        if (st == NULL) {
            continue;
        }
        PyObject *frames = PyTuple_New(st->nframe);
        if (frames == NULL) {
            goto done;
        }
        for (uint32_t k = 0; k < st->nframe; k++) {
            PyObject *frame = Py_BuildValue("(Oi)", st->frames[k].code->co_filename, st->lines[k]);
            if (frame == NULL) {
                Py_DECREF(frames);
                goto done;
            }
            PyObject *cached = PyDict_SetDefault(frame_cache, frame, frame);
            Py_XINCREF(cached);
            Py_DECREF(frame);
            if (cached == NULL) {
                Py_DECREF(frames);
                goto done;
            }
            PyTuple_SET_ITEM(frames, k, cached);
        }
        PyObject *site = Py_BuildValue("(Nddk)", frames, est[n].bytes, est[n].blocks, (unsigned long)est[n].samples);
        if (site == NULL || PyList_Append(sites, site) < 0) {
            Py_XDECREF(site);
            goto done;
        }
        Py_DECREF(site);
    }
    PyObject *stats = stats_dict();
    if (stats != NULL) {
        result = Py_BuildValue("(ON)", sites, stats);
    }
done:
    Py_XDECREF(sites);
    Py_XDECREF(frame_cache);
    for (size_t n = 0; n < nstacks; n++) {
        if (copies[n] != NULL) {
            release_stacks(&copies[n], 1);
        }
    }
    free(copies);
    free(est);
    if (dropped != NULL) {
        release_stacks(dropped, ndropped);
        free(dropped);
    }
    return result;
}

static PyObject *sampler_self_check(PyObject *self, PyObject *unused)
{
    /* Invariants of the tables, for tests: every block is findable from its home slot, counted
     * in the filter and in its stack's live count. */
    size_t blocks = 0;
    uint32_t *live = S.nstacks ? calloc(S.nstacks, sizeof(uint32_t)) : NULL;
    for (size_t i = 0; i < S.blocks_cap; i++) {
        block_t *b = &S.blocks[i];
        if (b->ptr == 0) {
            continue;
        }
        blocks++;
        if (find_block(b->ptr) != b || !filter_has(filter_slot(b->ptr)) || b->stack >= S.nstacks) {
            free(live);
            return PyUnicode_FromFormat("block %zu misplaced, unfiltered or without a stack", i);
        }
        live[b->stack]++;
    }
    if (blocks != S.nblocks) {
        free(live);
        return PyUnicode_FromFormat("%zu blocks found, %zu counted", blocks, S.nblocks);
    }
    for (size_t n = 0; n < S.nstacks; n++) {
        if (live[n] != S.stacks[n]->live) {
            free(live);
            return PyUnicode_FromFormat("stack %zu: %u live blocks, %u counted", n, live[n], S.stacks[n]->live);
        }
    }
    free(live);
    Py_RETURN_NONE;
}

static PyObject *sampler_seed(PyObject *self, PyObject *arg)
{
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    S.rng = mix64(seed) | 1;
    if (S.active) {
        S.countdown = draw_countdown();
    }
    Py_RETURN_NONE;
}

/* Test helpers: raw blocks of the MEM or OBJ domain, through whatever hooks are installed, so
 * that the tests can reach zero-size, huge and reallocated blocks directly. */
static PyObject *sampler_test_alloc(PyObject *self, PyObject *args)
{
    int domain;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "in", &domain, &size) || size < 0) {
        return PyErr_Occurred() ? NULL : (PyErr_SetString(PyExc_ValueError, "negative size"), NULL);
    }
    void *ptr = domain ? PyObject_Malloc((size_t)size) : PyMem_Malloc((size_t)size);
    if (ptr == NULL) {
        return PyErr_NoMemory();
    }
    return PyLong_FromVoidPtr(ptr);
}

static PyObject *sampler_test_realloc(PyObject *self, PyObject *args)
{
    int domain;
    PyObject *address;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "iOn", &domain, &address, &size) || size < 0) {
        return PyErr_Occurred() ? NULL : (PyErr_SetString(PyExc_ValueError, "negative size"), NULL);
    }
    void *old = PyLong_AsVoidPtr(address);
    if (old == NULL && PyErr_Occurred()) {
        return NULL;
    }
    void *ptr = domain ? PyObject_Realloc(old, (size_t)size) : PyMem_Realloc(old, (size_t)size);
    if (ptr == NULL) {
        Py_RETURN_NONE; /* failed: the old block is still the caller's */
    }
    return PyLong_FromVoidPtr(ptr);
}

static PyObject *sampler_test_free(PyObject *self, PyObject *args)
{
    int domain;
    PyObject *address;
    if (!PyArg_ParseTuple(args, "iO", &domain, &address)) {
        return NULL;
    }
    void *ptr = PyLong_AsVoidPtr(address);
    if (ptr == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (domain) {
        PyObject_Free(ptr);
    }
    else {
        PyMem_Free(ptr);
    }
    Py_RETURN_NONE;
}

static PyObject *sampler_test_sampled(PyObject *self, PyObject *address)
{
    /* (size, frames) of the sampled block at this address, or None */
    void *ptr = PyLong_AsVoidPtr(address);
    if (ptr == NULL && PyErr_Occurred()) {
        return NULL;
    }
    block_t *b = find_block((uintptr_t)ptr);
    if (b == NULL) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(nI)", (Py_ssize_t)b->size, S.stacks[b->stack]->nframe);
}

static PyObject *sampler_test_blocks(PyObject *self, PyObject *unused)
{
    /* [(address, size, allocation line)] of every live sampled block (tests) */
    guard = 1;
    size_t n = 0;
    struct { uintptr_t ptr; size_t size; PyCodeObject *code; int lasti; } *copy =
        S.nblocks ? malloc(S.nblocks * sizeof(*copy)) : NULL;
    for (size_t i = 0; i < S.blocks_cap && copy != NULL; i++) {
        block_t *b = &S.blocks[i];
        if (b->ptr == 0) {
            continue;
        }
        stack_t *st = S.stacks[b->stack];
        copy[n].ptr = b->ptr;
        copy[n].size = b->size;
        copy[n].code = st->nframe ? st->frames[0].code : NULL;
        copy[n].lasti = st->nframe ? st->frames[0].lasti : -1;
        if (copy[n].code != NULL) {
            Py_INCREF(copy[n].code);
        }
        n++;
    }
    guard = 0;
    PyObject *result = PyList_New(0);
    for (size_t i = 0; i < n; i++) {
        int line = copy[i].code ? PyCode_Addr2Line(copy[i].code, copy[i].lasti) : -1;
        PyObject *item = Py_BuildValue("(Nni)", PyLong_FromVoidPtr((void *)copy[i].ptr), (Py_ssize_t)copy[i].size, line);
        if (result != NULL && (item == NULL || PyList_Append(result, item) < 0)) {
            Py_CLEAR(result);
        }
        Py_XDECREF(item);
        Py_XDECREF(copy[i].code);
    }
    free(copy);
    return result;
}

/* ---------------------------------------------------------------- site_of */

/* Bytes between the start of an object's memory block and the object itself: what CPython's
 * allocator puts before it (_PyType_PreHeaderSize). The GC head (two words, 3.8 to 3.13) for a
 * GC type; from 3.11 two words more for a managed dict (3.12 and 3.13: or managed weakrefs). */
static size_t pre_header_size(PyTypeObject *tp)
{
    size_t size = PyType_IS_GC(tp) ? 2 * sizeof(uintptr_t) : 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (PyType_HasFeature(tp, Py_TPFLAGS_MANAGED_DICT | Py_TPFLAGS_MANAGED_WEAKREF)) {
        size += 2 * sizeof(PyObject *);
    }
#elif PY_VERSION_HEX >= 0x030B0000
    if (PyType_HasFeature(tp, Py_TPFLAGS_MANAGED_DICT)) {
        size += 2 * sizeof(PyObject *);
    }
#endif
    return size;
}

/* site_of(obj) -> the frames of the sampled block that holds obj, or None. */
static PyObject *sampler_site_of(PyObject *self, PyObject *obj)
{
    frame_t frames[MAX_FRAMES];
    uint32_t nframe = 0;
    int found = 0;
    uintptr_t start = (uintptr_t)obj - pre_header_size(Py_TYPE(obj));
    /* Phase 1, no Python object touched: copy the block's stack (with references), so that
     * building the result (which allocates, and may collect) works on our own copy. */
    guard = 1;
    if (S.active && may_be_sampled((void *)start)) {
        block_t *b = find_block(start);
        if (b != NULL) {
            stack_t *st = S.stacks[b->stack];
            found = 1;
            nframe = st->nframe;
            for (uint32_t k = 0; k < nframe; k++) {
                frames[k] = st->frames[k];
                Py_INCREF(frames[k].code); /* a count only */
            }
        }
    }
    guard = 0;
    if (!found) {
        Py_RETURN_NONE;
    }
    /* Phase 2: Python objects, allocation frame first, as collect() reports a site. */
    PyObject *result = PyTuple_New(nframe);
    for (uint32_t k = 0; k < nframe && result != NULL; k++) {
        PyCodeObject *code = frames[k].code;
        PyObject *frame = Py_BuildValue("(Oi)", code->co_filename, PyCode_Addr2Line(code, frames[k].lasti));
        if (frame == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyTuple_SET_ITEM(result, k, frame);
    }
    for (uint32_t k = 0; k < nframe; k++) {
        Py_DECREF(frames[k].code);
    }
    return result;
}

static PyObject *sampler_hooks_installed(PyObject *self, PyObject *unused)
{
    /* per domain (MEM, OBJ): is the current allocator ours? */
    PyMemAllocatorEx current;
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &current);
    int mem = is_our_hook(&current);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &current);
    return Py_BuildValue("(OO)", mem ? Py_True : Py_False, is_our_hook(&current) ? Py_True : Py_False);
}

/* count_types(objects) -> {type: count}: the objects of a list or tuple (gc.get_objects()) counted
 * by their type, in a C table keyed by the type's address (no int is made per object, unlike
 * Counter(map(type, objects))). Called from Python code with the GIL held, never from a hook:
 * it allocates Python objects for its result. Self-contained: its own table, nothing shared
 * with the tracer's. */
typedef struct { PyTypeObject *type; Py_ssize_t count; } type_count;

static int type_counts_grow(type_count **table, size_t *capacity)
{
    size_t bigger = *capacity * 2;
    type_count *grown = PyMem_RawCalloc(bigger, sizeof(type_count));
    if (grown == NULL)
        return -1;
    for (size_t i = 0; i < *capacity; i++) {
        type_count entry = (*table)[i];
        if (entry.type == NULL)
            continue;
        size_t slot = ((uintptr_t)entry.type >> 4) & (bigger - 1);
        while (grown[slot].type != NULL)
            slot = (slot + 1) & (bigger - 1);
        grown[slot] = entry;
    }
    PyMem_RawFree(*table);
    *table = grown;
    *capacity = bigger;
    return 0;
}

static PyObject *sampler_count_types(PyObject *self, PyObject *objects)
{
    if (!PyList_Check(objects) && !PyTuple_Check(objects)) {
        PyErr_Format(PyExc_TypeError, "count_types() takes a list or a tuple, not %.100s", Py_TYPE(objects)->tp_name);
        return NULL;
    }
    /* the list is read by index each time: no Python code runs below until the result is
     * built, so it cannot change size under us */
    size_t capacity = 256, used = 0;
    type_count *table = PyMem_RawCalloc(capacity, sizeof(type_count));
    if (table == NULL)
        return PyErr_NoMemory();
    Py_ssize_t n = PySequence_Fast_GET_SIZE(objects);
    PyObject **items = PySequence_Fast_ITEMS(objects);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTypeObject *type = Py_TYPE(items[i]);
        size_t slot = ((uintptr_t)type >> 4) & (capacity - 1);
        while (table[slot].type != NULL && table[slot].type != type)
            slot = (slot + 1) & (capacity - 1);
        if (table[slot].type == NULL) {
            if (2 * (used + 1) > capacity) {
                if (type_counts_grow(&table, &capacity) < 0) {
                    PyMem_RawFree(table);
                    return PyErr_NoMemory();
                }
                slot = ((uintptr_t)type >> 4) & (capacity - 1);
                while (table[slot].type != NULL)
                    slot = (slot + 1) & (capacity - 1);
            }
            table[slot].type = type;
            used++;
        }
        table[slot].count++;
    }
    /* the objects hold their types, and the caller holds the objects: every type is alive here */
    PyObject *result = PyDict_New();
    for (size_t i = 0; result != NULL && i < capacity; i++) {
        if (table[i].type == NULL)
            continue;
        PyObject *count = PyLong_FromSsize_t(table[i].count);
        if (count == NULL || PyDict_SetItem(result, (PyObject *)table[i].type, count) < 0)
            Py_CLEAR(result);
        Py_XDECREF(count);
    }
    PyMem_RawFree(table);
    return result;
}

static PyMethodDef methods[] = {
    {"start", (PyCFunction)(void (*)(void))sampler_start, METH_VARARGS | METH_KEYWORDS,
     "start(interval, frames): sample allocations every `interval` bytes on average, with up to `frames` frames."},
    {"stop", sampler_stop, METH_NOARGS, "stop(): stop sampling and forget every sample."},
    {"is_tracing", sampler_is_tracing, METH_NOARGS, "is_tracing() -> bool"},
    {"collect", sampler_collect, METH_NOARGS,
     "collect() -> (sites, stats): per stack, (frames, estimated live bytes, estimated live blocks, samples)."},
    {"stats", sampler_stats, METH_NOARGS, "stats() -> dict: counters and the tracer's own memory."},
    {"_self_check", sampler_self_check, METH_NOARGS, "_self_check() -> None, or what is inconsistent (tests)."},
    {"_seed", sampler_seed, METH_O, "_seed(n): make the sampling repeatable (tests)."},
    {"_test_alloc", sampler_test_alloc, METH_VARARGS, "_test_alloc(domain, size) -> address (0: MEM, 1: OBJ)."},
    {"_test_realloc", sampler_test_realloc, METH_VARARGS, "_test_realloc(domain, address, size) -> address or None."},
    {"_test_free", sampler_test_free, METH_VARARGS, "_test_free(domain, address)."},
    {"_test_sampled", sampler_test_sampled, METH_O, "_test_sampled(address) -> (size, nframe) or None."},
    {"_test_blocks", sampler_test_blocks, METH_NOARGS, "_test_blocks() -> [(address, size, allocation line)]."},
    {"_hooks_installed", sampler_hooks_installed, METH_NOARGS, "_hooks_installed() -> (MEM is ours, OBJ is ours)."},
    {"site_of", sampler_site_of, METH_O,
     "site_of(obj) -> where obj's memory block was allocated, as collect() reports a site's frames "
     "(allocation frame first), if that block is sampled; else None."},
    {"count_types", sampler_count_types, METH_O, "count_types(objects) -> {type: count} of a list or tuple of objects."},
    {NULL, NULL, 0, NULL},
};

#endif /* !SAMPLER_UNSUPPORTED */

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "soak.inprocess.probes._sampler",
    "Sampling allocation tracer: Poisson sampling over allocated bytes, Horvitz-Thompson estimates.", -1,
#ifndef SAMPLER_UNSUPPORTED
    methods,
#else
    NULL,
#endif
};

PyMODINIT_FUNC PyInit__sampler(void)
{
#ifdef SAMPLER_UNSUPPORTED
    PyErr_SetString(PyExc_ImportError, SAMPLER_UNSUPPORTED);
    return NULL;
#else
    static int atfork_registered = 0;
    if (!atfork_registered) {
        if (pthread_atfork(NULL, NULL, atfork_child) != 0) {
            PyErr_SetString(PyExc_ImportError, "the sampled tracer could not register its fork handler");
            return NULL;
        }
        atfork_registered = 1;
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_FRAMES", MAX_FRAMES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
#endif
}
