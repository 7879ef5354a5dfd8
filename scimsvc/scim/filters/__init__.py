"""RFC 7644 §3.4.2.2 filters: parsed once, then compiled to PostgreSQL or evaluated in memory.

Import from the module that holds what you use; this package re-exports nothing:

* `tree` — the parsed form (`Compare`, `Present`, `And`, `Or`, `Not`, `ValuePath`);
* `parse` — `parse_filter`: the tokenizer, the grammar and its syntax errors;
* `names` — attribute names resolved against the catalog, and their errors;
* `rules` — what a comparison means for each kind of value (operators, operand types, null, presence);
* `sql` — `compile_filter` / `where_sql`: a parameterised WHERE fragment over `Column`s and `Rows`;
* `match` — `matches` / `matches_element`: the same test on a rendered resource in Python.

`sql` and `match` apply the one set of rules in `rules` and `names`, so that a filter selects the same
resources in the database as in memory:

* strings compare case-insensitively unless the attribute is caseExact; co/sw/ew are substring tests;
  gt/ge/lt/le compare code points (`COLLATE "C"` in SQL);
* booleans take eq/ne with true/false; dateTimes take ISO 8601 strings and compare as instants; the `id`
  compares as a UUID (an invalid UUID equals nothing);
* a comparison on an absent attribute is false, except `ne`, which is true; `eq null` means "not
  present", `ne null` "present"; an empty string is not present (RFC 7644: "a non-empty value");
* a multi-valued attribute matches when one of its elements does (`emails.value co "x"`,
  `emails[type eq "work"]`); `emails eq "x"` means `emails.value eq "x"`; `emails pr` means "has one".

The SQL never evaluates to NULL, so `not (...)` is the complement of `(...)`, as in memory. Nothing here
does I/O: the SQL is text and parameters for the store to run.
"""
