/*  =========================================================================
    cart_openapi - the OpenAPI 3.1 description of the HTTP API, as GET
    /openapi.json serves it.

    Its one source is http_front/openapi.json; the build embeds that file's
    bytes here (http_front/embed.cmake), so the document served is always
    the one in the repository, and tests/test_openapi_spec.py validates it.
    =========================================================================
*/
#ifndef CART_OPENAPI_H_INCLUDED
#define CART_OPENAPI_H_INCLUDED

#include <stddef.h>

//  The document's bytes, NUL-terminated (the NUL not counted in the size).
extern const unsigned char cart_openapi_json[];
extern const size_t cart_openapi_json_size;

#endif
