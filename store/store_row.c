/*  store/store_row.c: one SQLite row as a JSON object keyed by column name, the way every
    reader of replgate's tables shows it (store.h, store_row_json). Apart from the store so
    that a program with a database of its own (the approver) reads rows the same way without
    linking the store. */
#include "store/store_int.h"
#include "common/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
s_is_bool_column (const char *name)
{
    size_t n = strlen (name);
    return (n > 10 && s_streq (name + n - 10, "_truncated")) || s_streq (name, "session_reset");
}

//  review and limits hold JSON objects as text; read as objects, except raw (verify compares
//  the text itself with the canonical form of what the events recorded).
static bool
s_is_json_column (const char *name)
{
    return s_streq (name, "review") || s_streq (name, "limits");
}

static json_t *
s_json_text (const char *text, size_t len, const char *name)
{
    json_error_t error;
    json_t *v = json_loadb (text, len, 0, &error);
    if (!v)
        log_warn ("store: column %s is not JSON, shown as null", name);
    return v ? v : json_null ();
}

static json_t *
s_column_json (sqlite3_stmt *st, int i, const char *name, bool raw)
{
    switch (sqlite3_column_type (st, i)) {
        case SQLITE_INTEGER: {
            sqlite3_int64 v = sqlite3_column_int64 (st, i);
            if (s_is_bool_column (name) && (v == 0 || v == 1))
                return json_boolean (v);
            return json_integer (v);
        }
        case SQLITE_FLOAT:
            return json_real (sqlite3_column_double (st, i));
        case SQLITE_TEXT:
        case SQLITE_BLOB: {
            const char *text = (const char *) sqlite3_column_text (st, i);
            size_t len = (size_t) sqlite3_column_bytes (st, i);
            if (text && !raw && s_is_json_column (name))
                return s_json_text (text, len, name);
            //  Plain text is valid UTF-8 already (as strict as jansson's check): not checked twice.
            json_t *v = !text ? NULL : raw ? json_stringn_nocheck (text, len)
                                           : !text_is_plain (text, len) ? text_display (text, len)
                                           : json_stringn_nocheck (text, len);
            return v ? v : json_null ();
        }
        default:
            return json_null ();
    }
}

//  A column holding bytes that are not text (binary output): readers get it shown as text
//  (U+FFFD for what is not) under its name, and byte for byte as <name>_base64. -1 on ENOMEM.
static int
s_add_bytes (json_t *row, sqlite3_stmt *st, int i, const char *name)
{
    const char *bytes = (const char *) sqlite3_column_blob (st, i);
    char key[80], *b64 = base64_encode (bytes ? bytes : "", (size_t) sqlite3_column_bytes (st, i));
    snprintf (key, sizeof key, "%s_base64", name);
    int rc = b64 ? json_object_set_new (row, key, json_string (b64)) : -1;
    free (b64);
    return rc;
}

json_t *
store_row_json (sqlite3_stmt *st, bool raw)
{
    json_t *row = json_object ();
    int columns = sqlite3_column_count (st);
    for (int i = 0; row && i < columns; i++) {
        const char *name = sqlite3_column_name (st, i);
        if (name && !raw && sqlite3_column_type (st, i) == SQLITE_BLOB && s_add_bytes (row, st, i, name)) {
            json_decref (row);
            row = NULL;
            break;
        }
        if (!name || json_object_set_new (row, name, s_column_json (st, i, name, raw)) != 0) {
            log_error ("store: out of memory reading a row");
            json_decref (row);
            row = NULL;
        }
    }
    return row;
}
