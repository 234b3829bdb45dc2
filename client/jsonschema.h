/*  client/jsonschema.h: checks a JSON value against a schema written in the subset of JSON
    Schema (draft 2020-12) that `replgate mcp` declares its tools' arguments in: type (object,
    string, integer, number, boolean, array), enum, minLength and maxLength (in characters),
    minimum, maximum, exclusiveMinimum, properties, required, additionalProperties false.
    Other keywords (description, pattern, default, ...) are not checked. Pure: never asserts
    on input. */
#ifndef RG_JSONSCHEMA_H
#define RG_JSONSCHEMA_H
#include <jansson.h>
#include <stddef.h>

//  0 if value fits schema; else -1 with why naming the value (`name`, or the property at
//  fault) and the rule it breaks: "code must be a string", "unknown argument x".
int jsonschema_check (json_t *schema, json_t *value, const char *name, char *why, size_t size);

//  Sets each property of schema that object lacks and that has a `default` to that default.
void jsonschema_defaults (json_t *schema, json_t *object);
#endif
