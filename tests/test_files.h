/*  test_files - file helpers the storage tests share (test_log,
    test_store): whole files read and written, sizes, and stderr captured
    around a call that logs there. Each failure fails the test.
*/
#ifndef TEST_FILES_H_INCLUDED
#define TEST_FILES_H_INCLUDED

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

//  The whole file (free it); *size set.
static uint8_t *
test_read_file (const char *path, size_t *size)
{
    int fd = open (path, O_RDONLY);
    if (fd == -1)
        fail_msg ("cannot open '%s'", path);
    struct stat info;
    assert_int_equal (fstat (fd, &info), 0);
    *size = (size_t)info.st_size;
    uint8_t *data = malloc (*size ? *size : 1);
    assert_non_null (data);
    size_t done = 0;
    while (done < *size) {
        ssize_t got = read (fd, data + done, *size - done);
        assert_true (got > 0);
        done += (size_t)got;
    }
    close (fd);
    return data;
}

static void
test_write_file (const char *path, const uint8_t *data, size_t size)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true (fd != -1);
    size_t done = 0;
    while (done < size) {
        ssize_t wrote = write (fd, data + done, size - done);
        assert_true (wrote > 0);
        done += (size_t)wrote;
    }
    assert_int_equal (close (fd), 0);
}

//  The file's size, or -1 when there is none.
static long long
test_file_size (const char *path)
{
    struct stat info;
    return stat (path, &info) == 0 ? (long long)info.st_size : -1;
}

//  Captures what is written on stderr from now (into dir/stderr.txt), so
//  that a thousand opens stay quiet and a failure can show it.
static int test_saved_stderr = -1;
static char test_quiet_path[160];

static void
test_quiet_begin (const char *dir)
{
    fflush (stderr);
    snprintf (test_quiet_path, sizeof (test_quiet_path), "%s/stderr.txt", dir);
    int fd = open (test_quiet_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true (fd != -1);
    test_saved_stderr = dup (2);
    assert_true (test_saved_stderr != -1);
    dup2 (fd, 2);
    close (fd);
}

//  Restores stderr; returns what was written (free it).
static char *
test_quiet_end (void)
{
    fflush (stderr);
    dup2 (test_saved_stderr, 2);
    close (test_saved_stderr);
    test_saved_stderr = -1;
    size_t size;
    uint8_t *data = test_read_file (test_quiet_path, &size);
    char *text = realloc (data, size + 1);
    assert_non_null (text);
    text[size] = 0;
    unlink (test_quiet_path);
    return text;
}

#endif
