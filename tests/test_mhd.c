/*  =========================================================================
    test_mhd - our patch to libmicrohttpd 0.9.75, on its own (no czmq).

    A daemon on 127.0.0.1 (port 0) whose handler answers 200 to every
    request; raw TCP clients write exactly the bytes a test wants. Checks
    MHD_OPTION_NOTIFY_ERROR_RESPONSE: called once, with the status sent,
    for each error libmicrohttpd answers on its own, never for a request
    the application answers, given directly or in an MHD_OPTION_ARRAY; and
    that the answer it reports is JSON. tests/test_framing.py covers every
    refused input through cartd. Every read has a deadline (SO_RCVTIMEO).
    =========================================================================
*/
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define S_TIMEOUT_MS 5000 //  Deadline for any one read

#ifndef MHD_HAVE_NOTIFY_ERROR_RESPONSE
#error "microhttpd.h is not our patched build's: run scripts/deps.sh"
#endif

//  What the hook saw; it runs in the daemon's thread
typedef struct {
    atomic_uint calls;
    atomic_uint status;
    atomic_bool connection_given;
} notes_t;

static void
s_note_error (void *cls, struct MHD_Connection *connection, unsigned int status)
{
    notes_t *notes = (notes_t *)cls;
    atomic_store (&notes->connection_given, connection != NULL);
    atomic_store (&notes->status, status);
    atomic_fetch_add (&notes->calls, 1);
}

static enum MHD_Result
s_answer_ok (void *cls, struct MHD_Connection *connection, const char *url,
             const char *method, const char *version, const char *data, size_t *size,
             void **request)
{
    static int seen;
    if (*request == NULL) {
        *request = &seen;
        return MHD_YES;
    }
    if (*size) {
        *size = 0;
        return MHD_YES;
    }
    static char body[] = "{}";
    struct MHD_Response *response =
        MHD_create_response_from_buffer (strlen (body), body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result queued = MHD_queue_response (connection, 200, response);
    MHD_destroy_response (response);
    return queued;
}

//  Sends request on a new connection and reads until the server closes
//  it; returns what it read (into reply, NUL-terminated).
static void
s_exchange (uint16_t port, const char *request, char *reply, size_t size)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct timeval timeout = {S_TIMEOUT_MS / 1000, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons (port)};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *)&address, sizeof (address)), 0);
    assert_int_equal (send (fd, request, strlen (request), 0), (ssize_t)strlen (request));
    size_t used = 0;
    ssize_t got;
    while (used < size - 1 && (got = recv (fd, reply + used, size - 1 - used, 0)) > 0)
        used += (size_t)got;
    //  Closed by the server (a reset if it left bytes unread), not timed out
    assert_true (got == 0 || errno == ECONNRESET);
    reply[used] = '\0';
    close (fd);
}

static uint16_t
s_port (struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null (info);
    return info->port;
}

//  Checks one refused request: the hook called once with want, and the
//  answer of that status in JSON
static void
s_expect_refused (struct MHD_Daemon *daemon, notes_t *notes, const char *request,
                  unsigned int want)
{
    char reply[4096], status_line[64], body[128];
    unsigned int calls = atomic_load (&notes->calls);
    s_exchange (s_port (daemon), request, reply, sizeof (reply));
    snprintf (status_line, sizeof (status_line), "HTTP/1.1 %u ", want);
    snprintf (body, sizeof (body), "\r\n\r\n{\"error\": {\"status\": %u, \"message\": \"",
              want);
    assert_true (strncmp (reply, status_line, strlen (status_line)) == 0);
    assert_non_null (strstr (reply, "\r\nContent-Type: application/json\r\n"));
    assert_non_null (strstr (reply, "\r\nConnection: close\r\n"));
    assert_non_null (strstr (reply, body));
    //  The hook ran before the answer was queued, so before it arrived
    assert_int_equal (atomic_load (&notes->calls), calls + 1);
    assert_int_equal (atomic_load (&notes->status), want);
    assert_true (atomic_load (&notes->connection_given));
}

static void
s_exercise (struct MHD_Daemon *daemon, notes_t *notes)
{
    char reply[4096];
    s_exchange (s_port (daemon),
                "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", reply,
                sizeof (reply));
    assert_true (strncmp (reply, "HTTP/1.1 200 ", 13) == 0);
    assert_int_equal (atomic_load (&notes->calls), 0);

    s_expect_refused (daemon, notes,
                      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                      "Content-Length: 2\r\n\r\nab",
                      MHD_HTTP_BAD_REQUEST);
    s_expect_refused (daemon, notes, "GET /a HTTP/1.1\r\n\r\n", MHD_HTTP_BAD_REQUEST);
    s_expect_refused (daemon, notes, "GET /a HTTP/3.0\r\nHost: x\r\n\r\n",
                      MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED);
    s_expect_refused (daemon, notes,
                      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "zz\r\n",
                      MHD_HTTP_BAD_REQUEST);

    //  Past the connection's memory pool (32 KiB by default)
    static char huge[40100];
    int length = snprintf (huge, sizeof (huge), "GET /");
    memset (huge + length, 'a', 40000);
    strcpy (huge + length + 40000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    s_expect_refused (daemon, notes, huge, MHD_HTTP_URI_TOO_LONG);
    assert_int_equal (atomic_load (&notes->calls), 5);
}

static void
test_notify_error_response (void **state)
{
    notes_t notes = {0};
    struct MHD_Daemon *daemon = MHD_start_daemon (
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, s_answer_ok, NULL,
        MHD_OPTION_NOTIFY_ERROR_RESPONSE, s_note_error, &notes, MHD_OPTION_END);
    assert_non_null (daemon);
    s_exercise (daemon, &notes);
    MHD_stop_daemon (daemon);
}

static void
test_notify_error_response_in_array (void **state)
{
    notes_t notes = {0};
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_NOTIFY_ERROR_RESPONSE, (intptr_t)s_note_error, &notes},
        {MHD_OPTION_END, 0, NULL}};
    struct MHD_Daemon *daemon =
        MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, s_answer_ok,
                          NULL, MHD_OPTION_ARRAY, options, MHD_OPTION_END);
    assert_non_null (daemon);
    s_exercise (daemon, &notes);
    MHD_stop_daemon (daemon);
}

//  Without the option, the errors are still answered in JSON
static void
test_no_hook (void **state)
{
    struct MHD_Daemon *daemon =
        MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, s_answer_ok,
                          NULL, MHD_OPTION_END);
    assert_non_null (daemon);
    char reply[4096];
    s_exchange (s_port (daemon), "GET /a HTTP/1.1\r\n\r\n", reply, sizeof (reply));
    assert_true (strncmp (reply, "HTTP/1.1 400 ", 13) == 0);
    assert_non_null (
        strstr (reply, "\r\n\r\n{\"error\": {\"status\": 400, \"message\": \""));
    MHD_stop_daemon (daemon);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_notify_error_response),
        cmocka_unit_test (test_notify_error_response_in_array),
        cmocka_unit_test (test_no_hook),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
