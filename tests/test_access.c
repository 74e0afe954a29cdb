/*  test_access - the access log's line (cart_access_format) without
    sockets: the Common Log Format's fields, and every byte that could end
    the quoted request or the line written escaped, whatever a client sent
    (the server refuses raw control characters in a request line before
    the handler sees it, so only this test can send them). The log's
    threads and files are tests/test_access_log.py's.
*/
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cart_access.h"

//  2026-12-02 07:45:35 UTC
#define WHEN ((time_t)1796197535)

static char *
s_line (const cart_access_entry_t *entry)
{
    cart_buf_t buf = {NULL, 0, 0};
    cart_access_format (&buf, entry);
    return cart_buf_take (&buf);
}

static void
test_fields (void **state)
{
    cart_access_entry_t entry = {.host = "127.0.0.1",
                                 .method = "GET",
                                 .target = "/items/jea-265",
                                 .version = "HTTP/1.0",
                                 .time = WHEN,
                                 .status = 200,
                                 .bytes = 123};
    char *line = s_line (&entry);
    assert_string_equal (
        line,
        "127.0.0.1 - - [02/Dec/2026:07:45:35 +0000] \"GET /items/jea-265 HTTP/1.0\" "
        "200 123\n");
    free (line);
    //  No body, no host, no version: "-", "-" and HTTP/1.1
    entry = (cart_access_entry_t){
        .method = "DELETE", .target = "/item/c/i", .time = WHEN, .status = 204};
    line = s_line (&entry);
    assert_string_equal (line, "- - - [02/Dec/2026:07:45:35 +0000] \"DELETE /item/c/i "
                               "HTTP/1.1\" 204 -\n");
    free (line);
}

static void
test_escaped (void **state)
{
    cart_access_entry_t entry = {.host = "::1",
                                 .method = "G\"T",
                                 .target = "/a\"b\\c\n\r\t\x01\x7f\xc3\xa9 d",
                                 .time = WHEN,
                                 .status = 404,
                                 .bytes = 7};
    char *line = s_line (&entry);
    assert_string_equal (line, "::1 - - [02/Dec/2026:07:45:35 +0000] \"G\\x22T "
                               "/a\\x22b\\x5Cc\\x0A\\x0D\\x09\\x01\\x7F\\xC3\\xA9 d "
                               "HTTP/1.1\" 404 7\n");
    //  One line, one quoted field
    assert_non_null (strchr (line, '\n'));
    assert_true (strchr (line, '\n') == line + strlen (line) - 1);
    size_t quotes = 0;
    for (char *p = line; *p; p++)
        quotes += *p == '"';
    assert_int_equal (quotes, 2);
    free (line);
}

static void
test_long_target_cut (void **state)
{
    size_t size = CART_ACCESS_FIELD_MAX * 2;
    char *target = malloc (size + 1);
    memset (target, '\x01', size);
    target[size] = 0;
    cart_access_entry_t entry = {
        .method = "GET", .target = target, .time = WHEN, .status = 404};
    char *line = s_line (&entry);
    //  CART_ACCESS_FIELD_MAX bytes of the target, each as \x01, then "..."
    const char *field = strstr (line, "GET ") + 4;
    const char *end = strstr (field, "... HTTP/1.1\"");
    assert_non_null (end);
    assert_int_equal (end - field, CART_ACCESS_FIELD_MAX * 4);
    free (line);
    free (target);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_fields),
        cmocka_unit_test (test_escaped),
        cmocka_unit_test (test_long_target_cut),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
