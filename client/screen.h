/*  client/screen.h: how text that a snippet, an agent or an output chose is shown to a person,
    so that nothing in it can move the cursor, erase, recolour or reorder what the terminal
    shows. Rendering is a pure function of the bytes: control characters become markers
    (⟨ESC⟩, ⟨CR⟩), invisible and bidirectional format characters become ⟨U+202E⟩, bytes that
    are not UTF-8 become ⟨\xFF⟩, and a literal ⟨ becomes ⟨U+27E8⟩, so every ⟨ on the screen
    opens a marker and the rendering can be read back exactly (screen_decode). */
#ifndef RG_SCREEN_H
#define RG_SCREEN_H
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include "common/buf.h"

//  Rendering flags.
enum {
    SCREEN_VISIBLE = 1,         //  render; without it the bytes pass as they are
    SCREEN_LINE = 2,            //  one line: a newline as ⏎, a tab as a space
    SCREEN_STYLE = 4,           //  markers in reverse video (only for a terminal)
};

//  What the user asked for (--raw, --escape); auto renders for a terminal only.
typedef enum { SCREEN_AUTO, SCREEN_RAW, SCREEN_ESCAPE } screen_mode_t;

//  The flags for text bound for fd: 0 (raw) for SCREEN_RAW, or for SCREEN_AUTO when fd is not
//  a terminal; else SCREEN_VISIBLE, with SCREEN_STYLE when fd is a terminal.
int screen_flags (screen_mode_t mode, int fd);

//  Appends data[0..size) rendered with flags to out (always NUL-terminated).
//  0, or -1 out of memory (out then holds a prefix of the rendering).
int screen_render (buf_t *out, const void *data, size_t size, int flags);

//  text rendered with flags, as a new string the caller frees. NULL out of memory.
char *screen_text (const char *text, size_t size, int flags);

//  Writes data rendered with flags to file. 0, or -1 if it could not.
int screen_write (FILE *file, const void *data, size_t size, int flags);

//  Renders every string of a request row in place: code and outputs (code, stdout, stderr,
//  value, traceback) with flags, every other string, nested ones too, with SCREEN_LINE
//  added. Nothing when flags lack SCREEN_VISIBLE. 0, or -1 out of memory.
int screen_row (json_t *row, int flags);

//  The length in bytes of the longest prefix of a rendering that takes at most width
//  columns without cutting a marker or a character; *columns gets the columns it takes
//  (one per character; a style sequence takes none).
size_t screen_fit (const char *rendered, size_t width, size_t *columns);

//  Reads back a rendering made without SCREEN_LINE: appends the original bytes to out.
//  0, or -1 if rendered is not such a rendering (out then holds a prefix).
int screen_decode (buf_t *out, const char *rendered, size_t size);

int screen_test (void);
#endif
