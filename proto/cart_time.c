/*  =========================================================================
    cart_time - RFC 3339 date-time validation.
    =========================================================================
*/
#include "cart_time.h"

#include <ctype.h>

//  Reads exactly `digits` digits as a number; -1 if any is not a digit.
static int
s_digits (const char *text, int digits)
{
    int value = 0;
    for (int i = 0; i < digits; i++) {
        if (!isdigit ((unsigned char)text[i]))
            return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

static int
s_days_in_month (int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

//  full-date "T" partial-time, as YYYY-MM-DDTHH:MM:SS; 19 characters.
static bool
s_date_time_valid (const char *t)
{
    int year = s_digits (t, 4), month = s_digits (t + 5, 2), day = s_digits (t + 8, 2);
    int hour = s_digits (t + 11, 2), minute = s_digits (t + 14, 2);
    int second = s_digits (t + 17, 2);
    if (t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') || t[13] != ':' ||
        t[16] != ':')
        return false;
    if (year < 0 || month < 1 || month > 12 || day < 1)
        return false;
    if (day > s_days_in_month (year, month))
        return false;
    return hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59 && second >= 0 &&
           second <= 60;
}

bool
cart_time_valid (const char *text, size_t len)
{
    if (len < 20 || !s_date_time_valid (text))
        return false;
    size_t at = 19;
    if (text[at] == '.') {
        size_t digits = 0;
        while (at + 1 + digits < len && isdigit ((unsigned char)text[at + 1 + digits]))
            digits++;
        if (digits == 0)
            return false;
        at += 1 + digits;
    }
    if (at + 1 == len && (text[at] == 'Z' || text[at] == 'z'))
        return true;
    if (at + 6 != len || (text[at] != '+' && text[at] != '-') || text[at + 3] != ':')
        return false;
    int hours = s_digits (text + at + 1, 2), minutes = s_digits (text + at + 4, 2);
    return hours >= 0 && hours <= 23 && minutes >= 0 && minutes <= 59;
}
