// jpeg_turbo.h declares the small C layer between jpeg_turbo.go and
// libjpeg-turbo. Every function returns 0 on success and -1 on failure,
// with libjpeg's message in ftj_message: errors longjmp back into the
// function that called libjpeg and never end the process.

#ifndef FT_JPEG_TURBO_H
#define FT_JPEG_TURBO_H

#include <stddef.h>

typedef struct ftj ftj;

// ftj_new returns a decoder, or NULL when out of memory.
ftj *ftj_new(void);

// ftj_free releases d and everything libjpeg allocated for it.
void ftj_free(ftj *d);

// ftj_message returns the message of the last failure.
const char *ftj_message(ftj *d);

// ftj_header reads the JPEG header of the n bytes at buf, which must stay
// valid until ftj_free, and returns the image size.
int ftj_header(ftj *d, const unsigned char *buf, size_t n, int *width, int *height);

// ftj_start starts decompression at scale 1/denom (denom 1, 2, 4 or 8)
// and returns the output size. Every output pixel has four bytes: RGBA
// with alpha 255, or, when *cmyk is set, the file's inverted (Adobe) CMYK.
int ftj_start(ftj *d, int denom, int *width, int *height, int *cmyk);

// ftj_read decodes every scanline into pix, stride bytes apart.
int ftj_read(ftj *d, unsigned char *pix, ptrdiff_t stride);

#endif
