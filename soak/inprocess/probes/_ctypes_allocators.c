/* soak.inprocess.probes._ctypes_allocators: the C allocator's functions, called from this object, for ctypes.
 *
 * ctypes calls a library's function through the pointer dlsym gave it; memray's hooks patch the
 * call tables of loaded objects, so a ctypes call of libc's malloc is never seen. These functions
 * call the process's malloc, calloc, realloc and free through this object's own call table,
 * which memray patches like any other: soak.inprocess.probes.ctypes_allocators hands their addresses to
 * ctypes in place of libc's, and soak.inprocess.probes.native_reader reads their frames as the C
 * allocator's. Each keeps its own frame (no tail call), so that the frame is there to be read.
 * Nothing here calls into Python.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>

/* An empty asm after the call: the compiler may not turn the call into a jump, which would leave
 * no frame of ours on the stack. */
#define KEEP_FRAME() __asm__ __volatile__("" : : : "memory")

__attribute__((noinline, visibility("default"))) void *leaksoak_malloc(size_t size)
{
    void *ptr = malloc(size);
    KEEP_FRAME();
    return ptr;
}

__attribute__((noinline, visibility("default"))) void *leaksoak_calloc(size_t nelem, size_t elsize)
{
    void *ptr = calloc(nelem, elsize);
    KEEP_FRAME();
    return ptr;
}

__attribute__((noinline, visibility("default"))) void *leaksoak_realloc(void *old, size_t size)
{
    void *ptr = realloc(old, size);
    KEEP_FRAME();
    return ptr;
}

__attribute__((noinline, visibility("default"))) void leaksoak_free(void *ptr)
{
    free(ptr);
    KEEP_FRAME();
}

static PyObject *allocators_addresses(PyObject *self, PyObject *unused)
{
    return Py_BuildValue(
        "{s:N,s:N,s:N,s:N}",
        "malloc", PyLong_FromVoidPtr((void *)leaksoak_malloc), "calloc", PyLong_FromVoidPtr((void *)leaksoak_calloc),
        "realloc", PyLong_FromVoidPtr((void *)leaksoak_realloc), "free", PyLong_FromVoidPtr((void *)leaksoak_free));
}

static PyMethodDef methods[] = {
    {"addresses", allocators_addresses, METH_NOARGS,
     "addresses() -> {'malloc': address, 'calloc': ..., 'realloc': ..., 'free': ...} of this module's allocators."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "soak.inprocess.probes._ctypes_allocators",
    "The C allocator's functions called from this object, so that memray's hooks see ctypes' calls of them.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__ctypes_allocators(void)
{
    return PyModule_Create(&module);
}
