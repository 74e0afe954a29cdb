/*  =========================================================================
    cart_getpid - getpid, read once: see below. Not in a library: an object
    of a static library is linked only when the program itself refers to
    one of its symbols, and these programs never call getpid.
    =========================================================================
*/
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

//  libzmq 4.3.4 checks for a fork around every mailbox operation:
//  signaler_t::send calls getpid before each eventfd write, and
//  signaler_t::wait before and after its poll (src/signaler.cpp), so every
//  zmq_poll, ZMQ_EVENTS and empty non-blocking receive pays for it, and
//  glibc 2.36 makes each call a system call: about a third of those of a
//  request through the front. HAVE_FORK is fixed when libzmq is built, and
//  no socket option turns the check off. So the programs that carry
//  requests (this file is compiled into cartd, http_front, broker and
//  shard_worker, see CMakeLists.txt) define getpid themselves: libzmq
//  calls it through its PLT, and a definition in the executable comes
//  first. The pid is read with the system call once, and again in a child
//  of fork, whose pthread_atfork handler forgets it: libzmq's check still
//  sees every fork. Only a child made without fork's handlers (a raw clone
//  or vfork) would see its parent's pid before an exec; these programs
//  make none (posix_spawn's child execs without calling getpid).
static _Atomic pid_t s_pid;

static void
s_pid_forget (void)
{
    atomic_store_explicit (&s_pid, 0, memory_order_relaxed);
}

static void
s_pid_watch_forks (void)
{
    pthread_atfork (NULL, NULL, s_pid_forget);
}

pid_t
getpid (void)
{
    pid_t pid = atomic_load_explicit (&s_pid, memory_order_relaxed);
    if (pid == 0) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once (&once, s_pid_watch_forks);
        pid = (pid_t)syscall (SYS_getpid);
        atomic_store_explicit (&s_pid, pid, memory_order_relaxed);
    }
    return pid;
}
