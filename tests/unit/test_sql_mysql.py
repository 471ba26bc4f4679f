"""classify_mysql: evasions that must be caught (executable comments above all), look-alikes
that must pass, and MySQL PREPARE/EXECUTE through PreparedStatements."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.sql import PreparedStatements, StatementClass, classify_mysql
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

EVASIONS: list[tuple[str, str, set[StatementClass]]] = [
    # executable comments: the server runs them, so do we
    ("versioned-comment-drop", "/*!50000 DROP TABLE t */", {X}),
    ("versioned-comment-no-version", "/*! DROP TABLE t */", {X}),
    ("versioned-comment-six-digits", "/*!800000 DROP TABLE t */", {X}),
    ("versioned-comment-after-select", "SELECT 1 /*!50000 ; DROP TABLE t */", {R, X}),
    (
        "versioned-comment-union",
        "SELECT a FROM t /*!50000 UNION SELECT password FROM mysql.user */",
        {R},
    ),
    ("versioned-comment-where", "DELETE FROM t WHERE id = 1 /*!50000 OR 1=1 */", {W, WU}),
    ("mariadb-executable-comment", "/*M!100100 DELETE FROM t */", {W, WU}),
    ("versioned-inside-comment-is-comment", "SELECT 1 /* /*!50000 DROP TABLE t */", {R}),
    ("nested-executable-comment", "/*!50000 /*!50000 DROP TABLE t */ */", {UN}),
    ("unterminated-executable-comment", "/*!50000 DROP TABLE t", {UN}),
    ("comment-inside-keyword", "DR/**/OP TABLE t", {UN}),
    ("comment-between-keywords", "DROP/**/TABLE t", {X}),
    ("hash-comment-line", "# harmless\nDROP TABLE t", {X}),
    ("dash-comment-line", "-- harmless\nDROP TABLE t", {X}),
    ("dash-without-space-is-minus", "DELETE FROM t WHERE id=1 --1 OR 1=1", {W, WU}),
    ("mixed-case", "dRoP tAbLe `T`", {X}),
    ("backtick-table", "DROP TABLE `db`.`users`", {X}),
    ("multi-statement", "SELECT 1; DROP TABLE t", {R, X}),
    ("multi-statement-no-space", "SELECT 1;DROP TABLE t;", {R, X}),
    # lexer ambiguity under NO_BACKSLASH_ESCAPES / ANSI_QUOTES
    ("backslash-quote-splits-differently", "SELECT 'a\\'; DROP TABLE t; -- '", {UN}),
    ("backslash-dquote-splits-differently", 'SELECT "a\\" ; DROP TABLE t; -- "', {UN}),
    ("backslash-hides-comment", "DELETE FROM t WHERE id = 'x\\' OR 1=1 -- '", {UN}),
    ("set-no-backslash-escapes", "SET sql_mode = 'NO_BACKSLASH_ESCAPES'", {SE}),
    ("set-ansi-quotes", "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ANSI_QUOTES'", {SE}),
    ("set-ansi", "SET @@sql_mode = 'ANSI'", {SE}),
    ("set-sql-mode-variable", "SET sql_mode = @old", {SE}),
    # unbounded writes
    ("delete-no-where", "DELETE FROM t", {W, WU}),
    ("delete-limit-no-where", "DELETE FROM t LIMIT 10", {W, WU}),
    ("delete-order-limit", "DELETE FROM t ORDER BY id LIMIT 1", {W, WU}),
    ("update-no-where", "UPDATE t SET a = 1", {W, WU}),
    ("where-1-eq-1", "UPDATE t SET a = 1 WHERE 1=1", {W, WU}),
    ("where-1", "DELETE FROM t WHERE 1", {W, WU}),
    ("where-true", "DELETE FROM t WHERE TRUE", {W, WU}),
    ("where-string-one", "DELETE FROM t WHERE '1'", {W, WU}),
    ("where-strings-equal", "DELETE FROM t WHERE 'a' = 'a'", {W, WU}),
    ("where-strings-equal-case", "DELETE FROM t WHERE 'a' = 'A'", {W, WU}),
    ("where-not-0", "DELETE FROM t WHERE NOT 0", {W, WU}),
    ("where-or-true", "DELETE FROM t WHERE id = 5 OR TRUE", {W, WU}),
    ("where-is-true", "DELETE FROM t WHERE 1 IS TRUE", {W, WU}),
    ("where-placeholder", "DELETE FROM t WHERE ?", {W, WU}),
    ("where-user-variable", "DELETE FROM t WHERE @x", {W, WU}),
    ("where-column-eq-itself", "DELETE FROM t WHERE id = id", {W, WU}),
    ("where-null-safe-self", "DELETE FROM t WHERE id <=> id", {W, WU}),
    (
        "update-subquery-join-does-not-bound",
        "UPDATE t SET a = (SELECT x FROM u JOIN v ON u.id = v.id)",
        {R, W, WU},
    ),
    ("multi-table-no-join-condition", "UPDATE a, b SET a.x = b.y", {W, WU}),
    ("truncate", "TRUNCATE TABLE t", {X, W, WU}),
    ("truncate-short", "TRUNCATE t", {X, W, WU}),
    # server escape
    ("into-outfile", "SELECT * FROM t INTO OUTFILE '/tmp/x'", {R, SE, UN}),
    ("into-outfile-before-from", "SELECT a INTO OUTFILE '/tmp/x' FROM t", {R, SE, UN}),
    ("into-dumpfile", "SELECT 0x3c3f INTO DUMPFILE '/var/www/shell.php'", {R, SE, UN}),
    ("load-file", "SELECT LOAD_FILE('/etc/passwd')", {R, SE}),
    ("load-file-backtick", "SELECT `load_file`('/etc/passwd')", {R, SE}),
    ("load-file-space", "SELECT LOAD_FILE ('/etc/passwd')", {R, SE}),
    ("load-file-nested", "SELECT HEX(SUBSTR(LOAD_FILE('/etc/passwd'), 1, 10))", {R, SE}),
    ("load-file-subquery", "SELECT * FROM t WHERE a = (SELECT LOAD_FILE('/x'))", {R, SE}),
    ("load-file-in-insert", "INSERT INTO t VALUES (LOAD_FILE('/etc/passwd'))", {W, SE}),
    ("load-file-in-show", "SHOW TABLES WHERE LOAD_FILE('/etc/passwd') IS NOT NULL", {R, SE}),
    ("load-file-in-comment-code", "SELECT /*!50000 LOAD_FILE('/etc/passwd') */", {R, SE}),
    ("sys-exec", "SELECT sys_exec('id')", {R, SE}),
    ("load-data-infile", "LOAD DATA INFILE '/etc/passwd' INTO TABLE t", {SE, W}),
    ("load-data-local-infile", "LOAD DATA LOCAL INFILE '/x' INTO TABLE t", {SE, W}),
    ("load-xml", "LOAD XML LOCAL INFILE '/x' INTO TABLE t", {SE, W}),
    ("install-plugin", "INSTALL PLUGIN p SONAME 'evil.so'", {SE}),
    ("install-component", "INSTALL COMPONENT 'file://component_x'", {SE}),
    (
        "create-udf",
        "CREATE FUNCTION sys_exec RETURNS INT SONAME 'lib_mysqludf_sys.so'",
        {DDL, DY, SE},
    ),
    ("set-global", "SET GLOBAL max_connections = 1", {SE}),
    ("set-global-var", "SET @@global.general_log = 0", {SE}),
    ("set-persist", "SET PERSIST local_infile = 1", {SE}),
    ("set-mixed-list", "SET autocommit = 0, GLOBAL max_connections = 1", {S, SE}),
    ("set-sql-log-bin", "SET sql_log_bin = 0", {SE}),
    ("set-session-sql-log-off", "SET SESSION sql_log_off = 1", {SE}),
    ("set-at-session-log-bin", "SET @@session.sql_log_bin = 0", {SE}),
    ("shutdown", "SHUTDOWN", {SE}),
    ("restart", "RESTART", {SE}),
    ("kill", "KILL 42", {SE}),
    ("kill-query", "KILL QUERY 42", {SE}),
    ("flush-privileges", "FLUSH PRIVILEGES", {SE, P}),
    ("flush-logs", "FLUSH LOGS", {SE}),
    ("reset-master", "RESET MASTER", {SE}),
    ("purge-logs", "PURGE BINARY LOGS BEFORE NOW()", {SE, X}),
    ("change-master", "CHANGE MASTER TO MASTER_HOST = 'evil'", {SE}),
    ("start-replica", "START REPLICA", {SE}),
    ("stop-slave", "STOP SLAVE", {SE}),
    ("binlog", "BINLOG 'base64events'", {SE}),
    ("clone", "CLONE INSTANCE FROM 'u'@'h':3306 IDENTIFIED BY 'x'", {SE}),
    ("lock-instance", "LOCK INSTANCE FOR BACKUP", {SE}),
    (
        "federated-table",
        "CREATE TABLE t (a int) ENGINE=FEDERATED CONNECTION='mysql://u@h/db/t'",
        {DDL, SE},
    ),
    ("data-directory", "CREATE TABLE t (a int) DATA DIRECTORY = '/tmp'", {DDL, SE}),
    (
        "create-server",
        "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (HOST 'evil')",
        {DDL, SE},
    ),
    ("alter-instance", "ALTER INSTANCE ROTATE INNODB MASTER KEY", {DDL, SE}),
    ("import-table", "IMPORT TABLE FROM '/tmp/t.sdi'", {SE}),
    # dynamic
    ("prepare-from-variable", "PREPARE s FROM @q", {U, DY}),
    ("mariadb-execute-immediate", "EXECUTE IMMEDIATE 'DROP TABLE t'", {X}),
    ("mariadb-execute-immediate-variable", "EXECUTE IMMEDIATE @q", {DY}),
    ("with-delete", "WITH x AS (SELECT 1) DELETE FROM t", {W, WU}),
    (
        "with-update-bounded",
        "WITH x AS (SELECT id FROM u) UPDATE t SET a = 1 WHERE id IN (SELECT id FROM x)",
        {W, R},
    ),
    ("call", "CALL p()", {DY}),
    ("call-with-load-file", "CALL p(LOAD_FILE('/etc/passwd'))", {DY, SE}),
    ("create-procedure", "CREATE PROCEDURE p() BEGIN DROP TABLE t; SELECT 1; END", {DDL, DY}),
    (
        "create-procedure-then-drop",
        "CREATE PROCEDURE p() BEGIN IF 1 THEN SELECT 1; END IF; END; DROP TABLE t",
        {DDL, DY, X},
    ),
    (
        "create-trigger",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
        {DDL, DY},
    ),
    ("create-event", "CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t", {DDL, DY}),
    (
        "create-procedure-definer",
        "CREATE DEFINER=`root`@`%` PROCEDURE p() SQL SECURITY DEFINER BEGIN END",
        {DDL, DY, P},
    ),
    ("mariadb-anonymous-block", "BEGIN NOT ATOMIC DELETE FROM t; END", {UN}),
    # privilege
    ("grant", "GRANT ALL ON *.* TO 'u'@'%'", {P}),
    ("grant-table", "GRANT SELECT ON db.t TO u", {P}),
    ("revoke", "REVOKE SELECT ON db.t FROM u", {P}),
    ("create-user", "CREATE USER u IDENTIFIED BY 'x'", {P}),
    ("alter-user", "ALTER USER u IDENTIFIED BY 'y'", {P}),
    ("drop-user", "DROP USER u", {P, X}),
    ("rename-user", "RENAME USER a TO b", {P}),
    ("set-password", "SET PASSWORD FOR u = 'x'", {P}),
    ("set-role", "SET ROLE admin", {P}),
    ("set-default-role", "SET DEFAULT ROLE ALL TO u", {P}),
    ("create-view-definer", "CREATE DEFINER = root VIEW v AS SELECT 1", {DDL, P}),
    # destructive DDL
    ("drop-table", "DROP TABLE IF EXISTS a, b", {X}),
    ("drop-temporary-table", "DROP TEMPORARY TABLE t", {X}),
    ("drop-database", "DROP DATABASE prod", {X}),
    ("drop-index", "DROP INDEX i ON t", {X}),
    ("drop-procedure", "DROP PROCEDURE p", {X}),
    ("alter-drop-column", "ALTER TABLE t DROP COLUMN c", {DDL, X}),
    ("alter-drop-primary-key", "ALTER TABLE t DROP PRIMARY KEY", {DDL, X}),
    ("alter-modify", "ALTER TABLE t MODIFY a VARCHAR(1)", {DDL, X}),
    ("alter-change", "ALTER TABLE t CHANGE a b INT", {DDL, X}),
    ("alter-rename", "ALTER TABLE t RENAME TO u", {DDL, X}),
    ("alter-add-then-drop", "ALTER TABLE t ADD COLUMN d INT, DROP COLUMN c", {DDL, X}),
    ("alter-truncate-partition", "ALTER TABLE t TRUNCATE PARTITION p0", {DDL, X}),
    ("alter-discard-tablespace", "ALTER TABLE t DISCARD TABLESPACE", {DDL, X}),
    ("alter-unknown-spec", "ALTER TABLE t FROBNICATE", {DDL, UN}),
    ("rename-table", "RENAME TABLE a TO b", {DDL, X}),
    # unclassified
    ("garbage", "this is not sql", {UN}),
    ("delimiter-client-command", "DELIMITER //", {UN}),
    ("unterminated-string", "SELECT 'abc", {UN}),
    ("unterminated-comment", "SELECT 1 /* DROP TABLE t", {UN}),
    ("stray-comment-close", "SELECT 1 */", {UN}),
    ("nul-byte", "SELECT 1\x00; DROP TABLE t", {UN}),
    ("execute-unknown", "EXECUTE s", {UN}),
]

LOOK_ALIKES: list[tuple[str, str, set[StatementClass]]] = [
    ("string-with-drop", "SELECT 'DROP TABLE users'", {R}),
    ("dash-comment", "SELECT 1 -- DROP TABLE t", {R}),
    ("hash-comment", "SELECT 1 # DROP TABLE t", {R}),
    ("block-comment", "SELECT /* DELETE FROM t */ 1", {R}),
    ("optimizer-hint", "SELECT /*+ MAX_EXECUTION_TIME(1000) */ * FROM t", {R}),
    ("backtick-keywords", "SELECT `drop` FROM `delete`", {R}),
    ("double-quoted-string", 'SELECT "DROP TABLE t"', {R}),
    ("escaped-quote", "SELECT 'it\\'s' FROM t WHERE b = 'x'", {R}),
    ("doubled-quote", "SELECT 'it''s; DROP TABLE t'", {R}),
    ("string-with-semicolon", "SELECT ';DROP TABLE t;'", {R}),
    ("string-with-versioned-comment", "SELECT '/*!50000 DROP TABLE t */'", {R}),
    ("dash-minus", "SELECT 1 --1", {R}),
    ("load-file-in-string", "SELECT 'LOAD_FILE(x)'", {R}),
    ("column-named-load-file", "SELECT load_file FROM t", {R}),
    ("select-version", "SELECT @@version", {R}),
    ("select-version-comment", "SELECT @@version_comment LIMIT 1", {R}),
    ("select-user-var", "SELECT @a := 1", {R}),
    ("select-database", "SELECT DATABASE()", {R}),
    ("select-for-update", "SELECT * FROM t WHERE id = 1 FOR UPDATE", {R}),
    ("lock-in-share-mode", "SELECT * FROM t LOCK IN SHARE MODE", {R}),
    ("select-placeholder", "SELECT abalance FROM pgbench_accounts WHERE aid = ?", {R}),
    ("select-union", "SELECT a FROM t UNION SELECT b FROM u", {R}),
    ("select-cte", "WITH x AS (SELECT * FROM t) SELECT * FROM x", {R}),
    ("parenthesised-select", "(SELECT 1)", {R}),
    ("table-statement", "TABLE t", {R}),
    ("show-tables", "SHOW TABLES", {R}),
    ("show-variables", "SHOW VARIABLES LIKE 'sql_mode'", {R}),
    ("show-full-processlist", "SHOW FULL PROCESSLIST", {R}),
    ("show-create-table", "SHOW CREATE TABLE t", {R}),
    ("describe", "DESCRIBE t", {R}),
    ("desc", "DESC t", {R}),
    ("explain-select", "EXPLAIN SELECT * FROM t", {R}),
    ("explain-delete", "EXPLAIN DELETE FROM t", {R}),
    ("explain-format", "EXPLAIN FORMAT=JSON SELECT * FROM t", {R}),
    ("explain-analyze", "EXPLAIN ANALYZE SELECT * FROM t", {R}),
    ("help", "HELP 'select'", {R}),
    ("handler-open", "HANDLER t OPEN", {R}),
    ("handler-read", "HANDLER t READ FIRST", {R}),
    ("do-sleep", "DO SLEEP(1)", {R}),
    ("update-where-id", "UPDATE t SET a = 1 WHERE id = 5", {W}),
    ("update-placeholders", "UPDATE t SET a = ? WHERE id = ?", {W}),
    ("update-where-and", "UPDATE t SET a = 1 WHERE 1=1 AND id = 5", {W}),
    ("delete-where-false-or", "DELETE FROM t WHERE 0 OR id = 3", {W}),
    ("delete-where-string-a", "DELETE FROM t WHERE 'a'", {W}),
    ("delete-where-in", "DELETE FROM t WHERE id IN (SELECT id FROM u)", {W, R}),
    ("update-join-bounded", "UPDATE a JOIN b ON a.id = b.id SET a.x = 1", {W}),
    ("delete-join-bounded", "DELETE a FROM a JOIN b ON a.id = b.id", {W}),
    ("delete-where-limit", "DELETE FROM t WHERE created < NOW() LIMIT 100", {W}),
    ("insert", "INSERT INTO t (a) VALUES (1)", {W}),
    ("insert-ignore", "INSERT IGNORE INTO t VALUES (1)", {W}),
    ("insert-on-duplicate", "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = 2", {W}),
    ("insert-select", "INSERT INTO t SELECT * FROM u", {W, R}),
    ("replace", "REPLACE INTO t VALUES (1)", {W}),
    ("use", "USE db", {S}),
    ("use-backtick", "USE `my-db`", {S}),
    ("set-names", "SET NAMES utf8mb4", {S}),
    ("set-names-collate", "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci", {S}),
    ("set-character-set", "SET CHARACTER SET utf8", {S}),
    ("set-autocommit", "SET autocommit = 0", {S}),
    ("set-session-var", "SET SESSION wait_timeout = 28800", {S}),
    ("set-user-var", "SET @a = 1, @b := 2", {S}),
    ("set-user-var-subquery", "SET @a = (SELECT x FROM s)", {S, R}),
    ("set-sql-mode-plain", "SET sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_DATE'", {S}),
    ("set-time-zone", "SET time_zone = '+00:00'", {S}),
    ("set-foreign-key-checks", "SET FOREIGN_KEY_CHECKS = 0", {S}),
    ("set-transaction", "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", {TX}),
    ("set-session-transaction", "SET SESSION TRANSACTION READ ONLY", {TX}),
    ("begin", "BEGIN", {TX}),
    ("begin-work", "BEGIN WORK", {TX}),
    ("start-transaction", "START TRANSACTION", {TX}),
    ("start-transaction-ro", "START TRANSACTION READ ONLY", {TX}),
    ("commit", "COMMIT", {TX}),
    ("rollback", "ROLLBACK", {TX}),
    ("savepoint", "SAVEPOINT s", {TX}),
    ("rollback-to", "ROLLBACK TO SAVEPOINT s", {TX}),
    ("release", "RELEASE SAVEPOINT s", {TX}),
    ("xa", "XA START 'x'", {TX}),
    (
        "create-table",
        "CREATE TABLE t (id INT PRIMARY KEY, event INT, a VARCHAR(10)) ENGINE=InnoDB",
        {DDL},
    ),
    ("create-table-if-not-exists", "CREATE TABLE IF NOT EXISTS t (a INT)", {DDL}),
    ("create-temporary-table", "CREATE TEMPORARY TABLE t (a INT)", {DDL}),
    ("create-table-like", "CREATE TABLE t2 LIKE t", {DDL}),
    ("create-table-as-select", "CREATE TABLE x AS SELECT * FROM y", {DDL, R}),
    ("create-index", "CREATE INDEX i ON t (a)", {DDL}),
    ("create-view", "CREATE VIEW v AS SELECT * FROM t", {DDL, R}),
    ("create-database", "CREATE DATABASE d", {DDL}),
    ("alter-add-column", "ALTER TABLE t ADD COLUMN c INT", {DDL}),
    ("alter-add-index", "ALTER TABLE t ADD INDEX i (a), ALGORITHM=INPLACE, LOCK=NONE", {DDL}),
    ("alter-engine", "ALTER TABLE t ENGINE=InnoDB", {DDL}),
    ("analyze-table", "ANALYZE TABLE t", {U}),
    ("optimize-table", "OPTIMIZE TABLE t", {U}),
    ("check-table", "CHECK TABLE t", {U}),
    ("lock-tables", "LOCK TABLES t READ, u WRITE", {U}),
    ("unlock-tables", "UNLOCK TABLES", {U}),
    ("deallocate", "DEALLOCATE PREPARE s", {U}),
    ("drop-prepare", "DROP PREPARE s", {U}),
    ("prepare-select", "PREPARE s FROM 'SELECT * FROM t WHERE id = ?'", {U, R}),
    ("empty", "", set()),
    ("only-comment", "-- nothing", set()),
    ("only-semicolon", ";", set()),
    ("mysqldump-header", "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */", {S}),
    ("mysqldump-names", "/*!50503 SET NAMES utf8mb4 */", {S}),
]


@pytest.mark.parametrize(
    ("sql", "expected"), [(s, e) for _, s, e in EVASIONS], ids=[i for i, _, _ in EVASIONS]
)
def test_evasions_are_caught(sql: str, expected: set[StatementClass]) -> None:
    c = classify_mysql(sql)
    assert c.classes == expected, c


@pytest.mark.parametrize(
    ("sql", "expected"), [(s, e) for _, s, e in LOOK_ALIKES], ids=[i for i, _, _ in LOOK_ALIKES]
)
def test_look_alikes_pass(sql: str, expected: set[StatementClass]) -> None:
    c = classify_mysql(sql)
    assert c.classes == expected, c
    assert c.error is None


TABLES: list[tuple[str, str, set[str]]] = [
    ("backtick-qualified-lowercased", "SELECT * FROM `Shop`.`Users`", {"shop.users"}),
    ("join", "SELECT * FROM a JOIN db.b ON a.id = b.id", {"a", "db.b"}),
    ("dual-is-not-a-table", "SELECT 1 FROM dual", set()),
    ("cte-name-is-not-a-table", "WITH d AS (SELECT * FROM t) SELECT * FROM d", {"t"}),
    ("non-recursive-cte-reads-real-table", "WITH t AS (SELECT * FROM t) SELECT * FROM t", {"t"}),
    ("into-user-variable", "SELECT a INTO @x FROM t", {"t"}),
    ("insert-select", "INSERT INTO t SELECT * FROM u", {"t", "u"}),
    ("replace", "REPLACE INTO s.t VALUES (1)", {"s.t"}),
    ("delete-join", "DELETE a FROM a JOIN b ON a.id = b.id", {"a", "b"}),
    ("drop-several", "DROP TABLE IF EXISTS a, db.b", {"a", "db.b"}),
    ("truncate", "TRUNCATE TABLE db.t", {"db.t"}),
    ("rename", "RENAME TABLE a TO b, c TO d", {"a", "b", "c", "d"}),
    ("alter", "ALTER TABLE db.t DROP COLUMN c", {"db.t"}),
    ("create-table-columns-are-not-tables", "CREATE TABLE t (a INT, b INT)", {"t"}),
    ("create-table-like", "CREATE TABLE t2 LIKE t", {"t", "t2"}),
    ("create-index", "CREATE INDEX i ON db.t (a)", {"db.t"}),
    ("load-data", "LOAD DATA INFILE '/x' INTO TABLE db.t", {"db.t"}),
    ("lock-tables", "LOCK TABLES a READ, b AS x WRITE", {"a", "b"}),
    ("grant", "GRANT SELECT ON db.t TO u", {"db.t"}),
    ("grant-wildcard", "GRANT SELECT ON db.* TO u", set()),
    ("handler", "HANDLER db.t OPEN AS h", {"db.t"}),
    ("describe", "DESCRIBE db.t", {"db.t"}),
    ("set-subquery", "SET @a = (SELECT x FROM secret)", {"secret"}),
    ("versioned-comment", "/*!50000 DROP TABLE t */", {"t"}),
]


@pytest.mark.parametrize(
    ("sql", "expected"), [(s, e) for _, s, e in TABLES], ids=[i for i, _, _ in TABLES]
)
def test_tables(sql: str, expected: set[str]) -> None:
    assert classify_mysql(sql).tables == expected


def test_statements_are_listed_with_their_own_text() -> None:
    c = classify_mysql("SELECT 'é' FROM a; /*!50000 DROP TABLE b */ ; DELETE FROM c WHERE id = 1")
    assert [s.kind for s in c.statements] == ["SELECT", "DROP", "DELETE"]
    assert [s.text for s in c.statements] == [
        "SELECT 'é' FROM a",
        "DROP TABLE b",
        "DELETE FROM c WHERE id = 1",
    ]
    assert [s.classes for s in c.statements] == [{R}, {X}, {W}]


def test_routine_body_semicolons_do_not_split_the_statement() -> None:
    c = classify_mysql(
        "CREATE PROCEDURE p() BEGIN DECLARE x INT; CASE x WHEN 1 THEN SELECT 1; END CASE; "
        "WHILE x < 2 DO SET x = x + 1; END WHILE; END; SELECT 2"
    )
    assert [s.kind for s in c.statements] == ["CREATE", "SELECT"]


def test_lexer_error_message_says_where() -> None:
    c = classify_mysql("SELECT 'abc")
    assert c.error is not None
    assert "unterminated" in c.error
    assert "character 8" in c.error


def test_sqlglot_failure_is_explained() -> None:
    c = classify_mysql("SELECT * FROM t INTO OUTFILE '/tmp/x'")
    assert c.error is not None
    assert "could not parse" in c.error


def test_sqlglot_does_not_log_sql_text(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        classify_mysql("GRANT SELECT ON t TO 'secret-user-name'")
        classify_mysql("OPTIMIZE TABLE `secret_table_name`")
    assert "secret" not in caplog.text


# --- fingerprints ----------------------------------------------------------------------------


def test_fingerprint_ignores_literals() -> None:
    a = classify_mysql("SELECT * FROM t WHERE id = 5 AND name = 'x'")
    b = classify_mysql("SELECT * FROM t WHERE id = 6 AND name = 'y'")
    assert a.fingerprint == b.fingerprint
    assert (
        a.fingerprint != classify_mysql("SELECT * FROM u WHERE id = 5 AND name = 'x'").fingerprint
    )


def test_fingerprint_separates_classes_of_the_same_shape() -> None:
    assert (
        classify_mysql("DELETE FROM t WHERE id = 5 OR 1 = 0").fingerprint
        != classify_mysql("DELETE FROM t WHERE id = 5 OR 1 = 1").fingerprint
    )


def test_fingerprint_is_exact_for_escapes() -> None:
    assert (
        classify_mysql("SELECT LOAD_FILE('/var/log/app')").fingerprint
        != classify_mysql("SELECT LOAD_FILE('/etc/shadow')").fingerprint
    )


# --- PREPARE / EXECUTE -----------------------------------------------------------------------


def test_prepare_from_string_then_execute() -> None:
    session = PreparedStatements()
    prepare = session.resolve(classify_mysql("PREPARE s FROM 'DELETE FROM t'"))
    assert prepare.classes == {U, W, WU}
    assert session.resolve(classify_mysql("EXECUTE s")).classes == {W, WU}


def test_prepare_from_variable_is_dynamic_when_executed() -> None:
    session = PreparedStatements()
    session.resolve(classify_mysql("SET @q = 'DROP TABLE t'; PREPARE s FROM @q"))
    assert session.resolve(classify_mysql("EXECUTE s")).classes == {DY}


def test_mysql_re_prepare_replaces_and_names_ignore_case() -> None:
    session = PreparedStatements()
    session.resolve(classify_mysql("PREPARE s FROM 'DELETE FROM t'"))
    session.resolve(classify_mysql("PREPARE S FROM 'SELECT 1'"))
    assert session.resolve(classify_mysql("EXECUTE s")).classes == {R}


def test_prepared_text_with_escapes_is_classified_as_the_server_sees_it() -> None:
    session = PreparedStatements()
    c = session.resolve(classify_mysql("PREPARE s FROM 'SELECT 1; DROP TABLE t'"))
    assert X in c.classes
    assert X in session.resolve(classify_mysql("EXECUTE s USING @a")).classes
    c = classify_mysql("PREPARE s FROM 'SELECT \\'a\\' FROM t'")
    assert c.classes == {U, R}


def test_deallocate_and_drop_prepare_forget() -> None:
    session = PreparedStatements()
    session.resolve(classify_mysql("PREPARE s FROM 'SELECT 1'"))
    session.resolve(classify_mysql("DEALLOCATE PREPARE s"))
    assert session.resolve(classify_mysql("EXECUTE s")).classes == {UN}
    session.resolve(classify_mysql("PREPARE s FROM 'SELECT 1'"))
    session.resolve(classify_mysql("DROP PREPARE s"))
    assert session.resolve(classify_mysql("EXECUTE s")).classes == {UN}


# --- properties ------------------------------------------------------------------------------


def _invariants(c: Classification) -> None:
    assert isinstance(c, Classification)
    assert c.classes or (not c.statements and c.error is None)
    if c.error is not None:
        assert UN in c.classes
    if c.statements:
        assert c.classes == frozenset().union(*(s.classes for s in c.statements))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(sql: str) -> None:
    _invariants(classify_mysql(sql))


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
    "/*!50000",
    "--",
    "-- ",
    "#",
    "\n",
    "'",
    '"',
    "`",
    "\\",
    "(",
    ")",
    "LOAD_FILE(",
    "INTO",
    "OUTFILE",
    "SET",
    "GLOBAL",
    "@@global.x",
    "@a",
    "=",
    "PREPARE",
    "EXECUTE",
    "s",
    "BEGIN",
    "END",
    "CREATE",
    "PROCEDURE",
    "p()",
    ",",
    "?",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=20))
def test_never_raises_on_sql_shaped_text(parts: list[str]) -> None:
    _invariants(classify_mysql(" ".join(parts)))


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([s for _, s, e in EVASIONS if e - {R} and "\x00" not in s]),
    st.sampled_from(["SELECT 1", "SET NAMES utf8mb4", "USE db"]),
)
def test_a_harmless_statement_in_front_hides_nothing(dangerous: str, harmless: str) -> None:
    alone = classify_mysql(dangerous)
    combined = classify_mysql(f"{harmless}; {dangerous}")
    if not alone.unclassified:
        assert alone.classes <= combined.classes
