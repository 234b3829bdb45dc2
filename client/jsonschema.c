/*  client/jsonschema.c: the subset of JSON Schema that the tools of `replgate mcp` declare
    their arguments in, checked. */
#include "client/jsonschema.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
s_why (char *why, size_t size, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vsnprintf (why, size, fmt, args);
    va_end (args);
    return -1;
}

static size_t
s_chars (const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += ((unsigned char) *text & 0xC0) != 0x80;    //  UTF-8: count all but continuations
    return n;
}

static bool
s_is (json_t *value, const char *type)
{
    return !type ? true
         : strcmp (type, "object") == 0 ? json_is_object (value)
         : strcmp (type, "string") == 0 ? json_is_string (value)
         : strcmp (type, "integer") == 0 ? json_is_integer (value)
         : strcmp (type, "number") == 0 ? json_is_number (value)
         : strcmp (type, "boolean") == 0 ? json_is_boolean (value)
         : strcmp (type, "array") == 0 ? json_is_array (value) : false;
}

int
jsonschema_check (json_t *schema, json_t *value, const char *name, char *why, size_t size)
{
    const char *type = json_string_value (json_object_get (schema, "type"));
    if (!s_is (value, type))
        return s_why (why, size, "%s must be %s %s", name, strchr ("aio", type[0]) ? "an" : "a", type);
    json_t *choices = json_object_get (schema, "enum"), *choice;
    size_t i;
    bool listed = !choices;
    json_array_foreach (choices, i, choice)
        listed |= json_equal (choice, value);
    if (!listed) {
        char *list = json_dumps (choices, JSON_COMPACT);
        s_why (why, size, "%s must be one of %s", name, list ? list : "its schema lists");
        free (list);
        return -1;
    }
    json_t *min = json_object_get (schema, "minLength"), *max = json_object_get (schema, "maxLength");
    size_t chars = json_is_string (value) ? s_chars (json_string_value (value)) : 0;
    if (json_is_string (value) && min && chars < (size_t) json_integer_value (min))
        return s_why (why, size, "%s must have at least %lld characters", name, (long long) json_integer_value (min));
    if (json_is_string (value) && max && chars > (size_t) json_integer_value (max))
        return s_why (why, size, "%s must have at most %lld characters", name, (long long) json_integer_value (max));
    min = json_object_get (schema, "minimum");
    max = json_object_get (schema, "maximum");
    json_t *above = json_object_get (schema, "exclusiveMinimum");
    double number = json_number_value (value);
    if (json_is_number (value) && min && number < json_number_value (min))
        return s_why (why, size, "%s must be at least %g", name, json_number_value (min));
    if (json_is_number (value) && above && number <= json_number_value (above))
        return s_why (why, size, "%s must be above %g", name, json_number_value (above));
    if (json_is_number (value) && max && number > json_number_value (max))
        return s_why (why, size, "%s must be at most %g", name, json_number_value (max));
    json_t *properties = json_object_get (schema, "properties");
    json_t *required = json_object_get (schema, "required"), *field;
    json_array_foreach (required, i, field)
        if (!json_object_get (value, json_string_value (field)))
            return s_why (why, size, "%s is missing", json_string_value (field));
    const char *key;
    json_object_foreach (json_is_object (value) ? value : NULL, key, field) {
        json_t *inner = json_object_get (properties, key);
        if (!inner && json_is_false (json_object_get (schema, "additionalProperties")))
            return s_why (why, size, "unknown argument %.64s", key);
        if (inner && jsonschema_check (inner, field, key, why, size) != 0)
            return -1;
    }
    return 0;
}

void
jsonschema_defaults (json_t *schema, json_t *object)
{
    const char *key;
    json_t *property;
    json_object_foreach (json_object_get (schema, "properties"), key, property)
        if (!json_object_get (object, key) && json_object_get (property, "default"))
            json_object_set (object, key, json_object_get (property, "default"));
}
