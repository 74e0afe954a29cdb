# Writes OUT, a C file that defines the bytes of IN as NAME (an array of
# unsigned char, NUL-terminated) and NAME_size (without the NUL), declared
# in HEADER. Run at build time (cmake -P), so the file stays the one
# source of what the program serves: http_front/openapi.json ->
# cart_openapi_json. Only CMake itself is needed.
foreach(var IN ITEMS IN OUT NAME HEADER)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "embed.cmake needs -D${var}=...")
    endif()
endforeach()
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR size "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# A line of C for each line of the file
string(REPLACE "0x0a," "0x0a,\n    " bytes "${bytes}")
get_filename_component(source "${IN}" NAME)
file(WRITE "${OUT}.tmp"
     "//  Made by http_front/embed.cmake from ${source} at build time: edit that.\n"
     "#include \"${HEADER}\"\n\n"
     "const unsigned char ${NAME}[] = {\n    ${bytes}0x00};\n"
     "const size_t ${NAME}_size = ${size};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
