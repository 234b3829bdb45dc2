/*  store/schema.h: internal to the store module: the SQL that creates and migrates the
    database. store.c runs it; the schema itself is documented in store.h. */
#ifndef RG_SCHEMA_H
#define RG_SCHEMA_H

//  The schema version this build creates and reads.
int schema_version (void);

//  The SQL that takes user_version `from` to from + 1 (0 <= from < schema_version ()); it
//  ends by setting user_version. NULL if out of range.
const char *schema_migration (int from);

//  In schema_test.c, run by store_test: a version 1 database (made there from migration 1
//  alone, with a request and its events as version 1 wrote them) upgrades, still verifies,
//  and takes the fields version 2 added (review, limits, slack_user); the states the schema
//  spells are those of common/states.c.
int schema_test (const char *dir);

#endif
