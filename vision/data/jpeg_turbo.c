// jpeg_turbo.c decodes JPEG files with libjpeg-turbo for jpeg_turbo.go.

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>
#include <jerror.h>

#include "jpeg_turbo.h"

struct ftj {
	struct jpeg_decompress_struct cinfo;
	struct jpeg_error_mgr jerr;
	jmp_buf jmp;
	char message[JMSG_LENGTH_MAX];
};

// ftj_error_exit replaces libjpeg's, which prints and calls exit: it
// keeps the message and jumps back to the failing ftj_ function.
static void ftj_error_exit(j_common_ptr c) {
	ftj *d = (ftj *)c->client_data;
	(*c->err->format_message)(c, d->message);
	longjmp(d->jmp, 1);
}

// ftj_emit_message ignores libjpeg's warnings, as PIL does, except a
// premature end of the data: PIL refuses a truncated file, and so does
// this decoder.
static void ftj_emit_message(j_common_ptr c, int level) {
	if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
		ftj_error_exit(c);
	}
}

ftj *ftj_new(void) {
	ftj *d = calloc(1, sizeof(ftj));
	if (d == NULL) {
		return NULL;
	}
	d->cinfo.err = jpeg_std_error(&d->jerr);
	d->jerr.error_exit = ftj_error_exit;
	d->jerr.emit_message = ftj_emit_message;
	d->cinfo.client_data = d;
	if (setjmp(d->jmp)) {
		jpeg_destroy_decompress(&d->cinfo);
		free(d);
		return NULL;
	}
	jpeg_create_decompress(&d->cinfo);
	return d;
}

void ftj_free(ftj *d) {
	if (d != NULL) {
		jpeg_destroy_decompress(&d->cinfo);
		free(d);
	}
}

const char *ftj_message(ftj *d) { return d->message; }

int ftj_header(ftj *d, const unsigned char *buf, size_t n, int *width, int *height) {
	if (setjmp(d->jmp)) {
		return -1;
	}
	jpeg_mem_src(&d->cinfo, buf, (unsigned long)n);
	jpeg_read_header(&d->cinfo, TRUE);
	*width = (int)d->cinfo.image_width;
	*height = (int)d->cinfo.image_height;
	return 0;
}

int ftj_start(ftj *d, int denom, int *width, int *height, int *cmyk) {
	if (setjmp(d->jmp)) {
		return -1;
	}
	j_decompress_ptr c = &d->cinfo;
	c->scale_num = 1;
	c->scale_denom = (unsigned int)denom;
	*cmyk = c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK;
	c->out_color_space = *cmyk ? JCS_CMYK : JCS_EXT_RGBA;
	jpeg_start_decompress(c);
	*width = (int)c->output_width;
	*height = (int)c->output_height;
	return 0;
}

int ftj_read(ftj *d, unsigned char *pix, ptrdiff_t stride) {
	if (setjmp(d->jmp)) {
		return -1;
	}
	j_decompress_ptr c = &d->cinfo;
	while (c->output_scanline < c->output_height) {
		JSAMPROW row = pix + (ptrdiff_t)c->output_scanline * stride;
		jpeg_read_scanlines(c, &row, 1);
	}
	// jpeg_finish_decompress is left out: it would only look for the end
	// marker, and an image whose pixels are all there is not refused for
	// lacking it. ftj_free aborts the decompression.
	return 0;
}
