/*  =========================================================================
    cart_wire - the CART/2 header frame.

    Layout (PROTOCOL.md section 3), big-endian:

        offset  size  field
             0     1  signature 'C'
             1     1  version (2)
             2     1  command
             3     1  flags
             4     2  status
             6     2  shard
             8     4  timeout_ms
            12     4  acked
            16     8  corr
            24     8  key
    =========================================================================
*/
#include "cart_wire.h"

#include <string.h>

#define SIGNATURE 'C'

enum {
    AT_SIGNATURE = 0,
    AT_VERSION = 1,
    AT_COMMAND = 2,
    AT_FLAGS = 3,
    AT_STATUS = 4,
    AT_SHARD = 6,
    AT_TIMEOUT = 8,
    AT_ACKED = 12,
    AT_CORR = 16,
    AT_KEY = 24,
    AT_END = 32
};
_Static_assert(AT_END == CART_HEADER_SIZE, "the header's fields fill it exactly");
_Static_assert(CART_SHARDS_MAX <= UINT16_MAX + 1, "a shard number fits its 16 bits");

//  --------------------------------------------------------------------------
//  Fixed-width fields

void
cart_put_be (uint8_t *p, uint64_t value, size_t width)
{
    for (size_t i = width; i-- > 0; value >>= 8)
        p[i] = (uint8_t)value;
}

uint64_t
cart_get_be (const uint8_t *p, size_t width)
{
    uint64_t value = 0;
    for (size_t i = 0; i < width; i++)
        value = (value << 8) | p[i];
    return value;
}

void
cart_put_u32 (uint8_t *p, uint32_t value)
{
    cart_put_be (p, value, 4);
}

uint32_t
cart_get_u32 (const uint8_t *p)
{
    return (uint32_t)cart_get_be (p, 4);
}

//  --------------------------------------------------------------------------
//  Commands

typedef struct {
    const char *name;
    cart_body_rule_t body;
    int receivers;
} command_info_t;

#define CART_COMMAND_INFO(NAME, value, body, receivers)                                  \
    [value] = {#NAME, body, receivers},
static const command_info_t s_commands[] = {CART_COMMANDS (CART_COMMAND_INFO)};
#undef CART_COMMAND_INFO
#define COMMANDS (sizeof (s_commands) / sizeof (s_commands[0]))

static const command_info_t *
s_command (int command)
{
    if (command < 0 || (size_t)command >= COMMANDS || !s_commands[command].name)
        return NULL;
    return &s_commands[command];
}

cart_body_rule_t
cart_command_body (int command)
{
    const command_info_t *info = s_command (command);
    return info ? info->body : CART_BODY_NEVER;
}

const char *
cart_command_name (int command)
{
    const command_info_t *info = s_command (command);
    return info ? info->name : "UNKNOWN";
}

//  --------------------------------------------------------------------------
//  The header

void
cart_header_encode (const cart_header_t *header, uint8_t *wire)
{
    wire[AT_SIGNATURE] = SIGNATURE;
    wire[AT_VERSION] = CART_VERSION;
    wire[AT_COMMAND] = header->command;
    wire[AT_FLAGS] = header->flags;
    cart_put_be (wire + AT_STATUS, header->status, 2);
    cart_put_be (wire + AT_SHARD, header->shard, 2);
    cart_put_be (wire + AT_TIMEOUT, header->timeout_ms, 4);
    cart_put_be (wire + AT_ACKED, header->acked, 4);
    cart_put_be (wire + AT_CORR, header->corr, 8);
    cart_put_be (wire + AT_KEY, header->key, 8);
}

#define FAIL(text) CART_FAIL (error, text)

//  Names what a frame that is not a CART/2 header is, for the log line.
static int
s_not_a_header (const uint8_t *p, size_t size, const char **error)
{
    if (size == 7 && memcmp (p, "CART", 4) == 0)
        FAIL ("the peer speaks CART/1; this is CART/2 (upgrade the older side)");
    if (size >= 2 && p[AT_SIGNATURE] == SIGNATURE && p[AT_VERSION] != CART_VERSION)
        FAIL ("the peer speaks another version of CART; this is CART/2");
    FAIL ("the first frame is not a 32-byte CART/2 header");
}

int
cart_header_decode (const void *data, size_t size, int at, cart_header_t *header,
                    const char **error)
{
    const uint8_t *p = (const uint8_t *)data;
    memset (header, 0, sizeof (*header));
    if (size != CART_HEADER_SIZE || p[AT_SIGNATURE] != SIGNATURE ||
        p[AT_VERSION] != CART_VERSION)
        return s_not_a_header (p, size, error);
    header->command = p[AT_COMMAND];
    header->flags = p[AT_FLAGS];
    header->status = (uint16_t)cart_get_be (p + AT_STATUS, 2);
    header->shard = (uint16_t)cart_get_be (p + AT_SHARD, 2);
    header->timeout_ms = (uint32_t)cart_get_be (p + AT_TIMEOUT, 4);
    header->acked = (uint32_t)cart_get_be (p + AT_ACKED, 4);
    header->corr = cart_get_be (p + AT_CORR, 8);
    header->key = cart_get_be (p + AT_KEY, 8);
    const command_info_t *info = s_command (header->command);
    if (!info)
        FAIL ("the header's command is not one of CART/2's");
    if (!(info->receivers & at))
        FAIL ("the header's command may not be sent to this end of the bus");
    bool with_status =
        header->command == CART_CMD_REPLY || header->command == CART_CMD_REFUSE;
    if (with_status && !cart_status_known (header->status))
        FAIL ("the header's status is not one of CART/2's");
    if (header->key >> 63)
        FAIL ("the header's key is not below 2^63");
    if (header->shard >= CART_SHARDS_MAX)
        FAIL ("the header's shard is not below 10000");
    return 0;
}
