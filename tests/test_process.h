/*  test_process - starting and stopping the service's programs from a
    test: build/bin/PROGRAM in a child process that dies with the test,
    its first line of output read with a deadline, and a check that it
    stops cleanly on SIGTERM. Included by the tests that need it.
*/
#ifndef TEST_PROCESS_H_INCLUDED
#define TEST_PROCESS_H_INCLUDED

#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_ARGS_MAX 32 //  a program's argv, its NULL included

//  Fills argv[TEST_ARGS_MAX] for BIN_DIR/program and the NULL-terminated
//  args; more args than fit fail the test.
static inline void
s_test_argv (char **argv, char *path, size_t path_size, const char *program, va_list args)
{
    snprintf (path, path_size, "%s/%s", CART_BIN_DIR, program);
    argv[0] = path;
    int argc = 1;
    while ((argv[argc] = va_arg (args, char *))) {
        argc++;
        assert_true (argc < TEST_ARGS_MAX);
    }
}

//  Starts BIN_DIR/program with args (NULL-terminated) and returns its pid;
//  copies the first line it prints into line (when not NULL), waiting at
//  most 30 s for it.
static pid_t
test_spawn (char *line, size_t line_size, const char *program, ...)
{
    char *argv[TEST_ARGS_MAX];
    char path[512];
    va_list args;
    va_start (args, program);
    s_test_argv (argv, path, sizeof (path), program, args);
    va_end (args);
    int out[2];
    assert_int_equal (pipe (out), 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL); //  never outlive the test
        dup2 (out[1], STDOUT_FILENO);
        close (out[0]);
        close (out[1]);
        execv (path, argv);
        _exit (127);
    }
    close (out[1]);
    size_t used = 0;
    char c;
    struct pollfd item = {out[0], POLLIN, 0};
    while (line && used + 1 < line_size && poll (&item, 1, 30000) == 1 &&
           read (out[0], &c, 1) == 1 && c != '\n')
        line[used++] = c;
    if (line) {
        line[used] = 0;
        assert_true (used > 0);
    }
    close (out[0]);
    return pid;
}

//  Runs BIN_DIR/program with args (NULL-terminated) to its end, copying
//  what it prints on stdout and stderr into out; fails the test if it runs
//  longer than timeout_ms. Returns its exit status (-1 if it was killed).
static inline int
test_run (char *out, size_t out_size, int timeout_ms, const char *program, ...)
{
    char *argv[TEST_ARGS_MAX];
    char path[512];
    va_list args;
    va_start (args, program);
    s_test_argv (argv, path, sizeof (path), program, args);
    va_end (args);
    int fds[2];
    assert_int_equal (pipe (fds), 0);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        dup2 (fds[1], STDOUT_FILENO);
        dup2 (fds[1], STDERR_FILENO);
        close (fds[0]);
        close (fds[1]);
        execv (path, argv);
        _exit (127);
    }
    close (fds[1]);
    size_t used = 0;
    struct pollfd item = {fds[0], POLLIN, 0};
    int64_t until = zclock_mono () + timeout_ms;
    ssize_t got = 1;
    while (got > 0 && zclock_mono () < until &&
           poll (&item, 1, (int)(until - zclock_mono ())) == 1) {
        char chunk[256];
        got = read (fds[0], chunk, sizeof (chunk));
        for (ssize_t i = 0; i < got && used + 1 < out_size; i++)
            out[used++] = chunk[i];
    }
    out[used] = 0;
    close (fds[0]);
    bool ended = got == 0;
    if (!ended)
        kill (pid, SIGKILL);
    int status = 0;
    waitpid (pid, &status, 0);
    if (!ended)
        fail_msg ("%s ran longer than %d ms", program, timeout_ms);
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

//  Waits up to timeout_ms for a process to end by itself; returns its exit
//  status (-1 when a signal ended it), or fails the test.
static inline int
test_wait_exit (pid_t *pid, int timeout_ms)
{
    int64_t until = zclock_mono () + timeout_ms;
    int status = 0;
    pid_t done = 0;
    while ((done = waitpid (*pid, &status, WNOHANG)) == 0 && zclock_mono () < until) {
        struct pollfd none = {-1, 0, 0};
        poll (&none, 0, 10); //  a process's end has no descriptor to wait on
    }
    if (done != *pid)
        fail_msg ("process %d did not end within %d ms", (int)*pid, timeout_ms);
    *pid = 0;
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

//  Stops a process; after SIGTERM it must have shut down cleanly: exit
//  status 0 (under the sanitizers, also no leak or error reported).
static void
test_kill (pid_t *pid, int signal)
{
    if (*pid <= 0)
        return;
    kill (*pid, signal);
    int status = 0;
    waitpid (*pid, &status, 0);
    *pid = 0;
    if (signal == SIGTERM && (!WIFEXITED (status) || WEXITSTATUS (status) != 0))
        fail_msg ("a process did not stop cleanly on SIGTERM (status 0x%x)", status);
}

#endif
