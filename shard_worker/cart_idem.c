/*  =========================================================================
    cart_idem - the idempotency keys of one shard (see cart_idem.h).

    Two czmq hash tables: one from "customer key" (a space cannot occur in
    either) to its entry, one from the customer to what the customer holds
    (its keys, oldest first, and their bytes). Every entry is also on one
    list of the whole table, in the order entries were made, which
    expiry walks from its old end.
    =========================================================================
*/
#include "cart_idem.h"

#include <czmq.h>

#include "cart_types.h"

typedef struct _owner_t owner_t;
typedef struct _entry_t entry_t;

struct _entry_t {
    entry_t *prev, *next;   //  the table's list, oldest first
    entry_t *cprev, *cnext; //  the customer's
    owner_t *owner;
    cart_idem_entry_t pub;
    size_t alloc;        //  bytes of this block
    size_t customer_len; //  name is "customer key"
    size_t key_len;
    char name[]; //  NUL-terminated, then the body
};

struct _owner_t {
    entry_t *head, *tail;
    size_t count;
    size_t bytes;
};

struct _cart_idem_t {
    zhashx_t *entries; //  "customer key" -> entry_t
    zhashx_t *owners;  //  customer -> owner_t
    entry_t *head, *tail;
    size_t size;
    size_t bytes;
};

cart_idem_t *
cart_idem_new (void)
{
    cart_idem_t *self = (cart_idem_t *)zmalloc (sizeof (cart_idem_t));
    assert (self);
    self->entries = zhashx_new ();
    self->owners = zhashx_new ();
    assert (self->entries && self->owners);
    return self;
}

void
cart_idem_destroy (cart_idem_t **self_p)
{
    assert (self_p);
    cart_idem_t *self = *self_p;
    if (!self)
        return;
    for (entry_t *entry = self->head, *next; entry; entry = next) {
        next = entry->next;
        free (entry);
    }
    for (owner_t *owner = (owner_t *)zhashx_first (self->owners); owner;
         owner = (owner_t *)zhashx_next (self->owners))
        free (owner);
    zhashx_destroy (&self->entries);
    zhashx_destroy (&self->owners);
    free (self);
    *self_p = NULL;
}

//  Writes "customer key" into name[CART_ID_MAX + CART_IDEM_MAX + 2].
static void
s_name (char *name, const char *customer, size_t customer_len, const char *key,
        size_t key_len)
{
    memcpy (name, customer, customer_len);
    name[customer_len] = ' ';
    memcpy (name + customer_len + 1, key, key_len);
    name[customer_len + 1 + key_len] = 0;
}

#define NAME_MAX_LEN (CART_ID_MAX + CART_IDEM_MAX + 2)

static void
s_forget (cart_idem_t *self, entry_t *entry)
{
    owner_t *owner = entry->owner;
    if (entry->prev)
        entry->prev->next = entry->next;
    else
        self->head = entry->next;
    if (entry->next)
        entry->next->prev = entry->prev;
    else
        self->tail = entry->prev;
    if (entry->cprev)
        entry->cprev->cnext = entry->cnext;
    else
        owner->head = entry->cnext;
    if (entry->cnext)
        entry->cnext->cprev = entry->cprev;
    else
        owner->tail = entry->cprev;
    owner->count--;
    owner->bytes -= entry->pub.size;
    self->size--;
    self->bytes -= entry->alloc;
    zhashx_delete (self->entries, entry->name);
    if (owner->count == 0) {
        char customer[CART_ID_MAX + 1];
        memcpy (customer, entry->name, entry->customer_len);
        customer[entry->customer_len] = 0;
        zhashx_delete (self->owners, customer);
        self->bytes -= sizeof (owner_t);
        free (owner);
    }
    free (entry);
}

const cart_idem_entry_t *
cart_idem_find (cart_idem_t *self, const char *customer, size_t customer_len,
                const char *key, size_t key_len)
{
    assert (self);
    if (customer_len > CART_ID_MAX || key_len > CART_IDEM_MAX)
        return NULL;
    char name[NAME_MAX_LEN];
    s_name (name, customer, customer_len, key, key_len);
    entry_t *entry = (entry_t *)zhashx_lookup (self->entries, name);
    return entry ? &entry->pub : NULL;
}

void
cart_idem_put (cart_idem_t *self, const char *customer, size_t customer_len,
               const char *key, size_t key_len, const cart_idem_entry_t *pub)
{
    assert (self && pub);
    if (customer_len < 1 || customer_len > CART_ID_MAX || key_len < 1 ||
        key_len > CART_IDEM_MAX || pub->size > CART_IDEM_BYTES_PER_CART)
        return; //  the callers check these; nothing is kept that breaks them
    char name[NAME_MAX_LEN];
    s_name (name, customer, customer_len, key, key_len);
    entry_t *old = (entry_t *)zhashx_lookup (self->entries, name);
    if (old)
        s_forget (self, old);
    size_t name_len = customer_len + 1 + key_len;
    size_t alloc = sizeof (entry_t) + name_len + 1 + pub->size;
    entry_t *entry = (entry_t *)malloc (alloc);
    if (!entry)
        abort ();
    *entry = (entry_t){
        .pub = *pub, .alloc = alloc, .customer_len = customer_len, .key_len = key_len};
    memcpy (entry->name, name, name_len + 1);
    uint8_t *body = (uint8_t *)entry->name + name_len + 1;
    if (pub->size)
        memcpy (body, pub->body, pub->size);
    entry->pub.body = body;
    name[customer_len] = 0; //  the customer alone
    owner_t *owner = (owner_t *)zhashx_lookup (self->owners, name);
    if (!owner) {
        owner = (owner_t *)zmalloc (sizeof (owner_t));
        assert (owner);
        zhashx_insert (self->owners, name, owner);
        self->bytes += sizeof (owner_t);
    }
    entry->owner = owner;
    entry->prev = self->tail;
    if (self->tail)
        self->tail->next = entry;
    else
        self->head = entry;
    self->tail = entry;
    entry->cprev = owner->tail;
    if (owner->tail)
        owner->tail->cnext = entry;
    else
        owner->head = entry;
    owner->tail = entry;
    owner->count++;
    owner->bytes += pub->size;
    self->size++;
    self->bytes += alloc;
    zhashx_insert (self->entries, entry->name, entry);
    while (owner->count > CART_IDEM_PER_CART || owner->bytes > CART_IDEM_BYTES_PER_CART)
        s_forget (self, owner->head); //  the owner outlives this: entry is its newest
}

size_t
cart_idem_expire (cart_idem_t *self, uint64_t before, size_t max)
{
    assert (self);
    size_t forgotten = 0;
    while (forgotten < max && self->head && self->head->pub.at <= before) {
        s_forget (self, self->head);
        forgotten++;
    }
    return forgotten;
}

bool
cart_idem_next (cart_idem_t *self, void **cursor, const char **customer,
                size_t *customer_len, const char **key, size_t *key_len,
                const cart_idem_entry_t **pub)
{
    assert (self && cursor);
    entry_t *entry = *cursor ? ((entry_t *)*cursor)->next : self->head;
    if (!entry)
        return false;
    *cursor = entry;
    *customer = entry->name;
    *customer_len = entry->customer_len;
    *key = entry->name + entry->customer_len + 1;
    *key_len = entry->key_len;
    *pub = &entry->pub;
    return true;
}

size_t
cart_idem_size (cart_idem_t *self)
{
    assert (self);
    return self->size;
}

size_t
cart_idem_bytes (cart_idem_t *self)
{
    assert (self);
    return self->bytes;
}
