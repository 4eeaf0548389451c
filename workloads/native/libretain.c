/* A tiny C library for the native workloads: a record store whose callers forget to release. */
#include <stdlib.h>
#include <string.h>

/* A copy of `size` bytes of `fill`; the caller owns it and must pass it to release_record. */
void *make_record(size_t size, int fill)
{
    void *record = malloc(size);
    if (record != NULL)
        memset(record, fill, size); /* touched, so that it counts in the process's RSS */
    return record;
}

void release_record(void *record)
{
    free(record);
}
