-- A sample of statements from PostgreSQL's regression suite
-- (src/test/regress/sql: select, with, insert_conflict, merge, join).
SELECT onek.unique1, onek.stringu1 FROM onek WHERE onek.unique1 < 20 ORDER BY unique1 using >;
SELECT onek2.* FROM onek2 WHERE onek2.unique1 < 10;
SELECT p.name, p.age FROM person* p;
SELECT * FROM onek WHERE (unique1, ten) IN (VALUES (1,1), (20,0), (99,9), (17,99)) ORDER BY unique1;
WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 100) SELECT sum(n) FROM t;
WITH RECURSIVE subdepartment AS (SELECT name as root_name, * FROM department WHERE name = 'A' UNION ALL SELECT sd.root_name, d.* FROM department AS d, subdepartment AS sd WHERE d.parent_department = sd.id) SELECT * FROM subdepartment ORDER BY name;
WITH t AS (INSERT INTO y VALUES (11), (12), (13), (14), (15), (16), (17), (18), (19), (20) RETURNING *) SELECT * FROM t;
insert into insertconflicttest values (1, 'Apple') on conflict (key) do update set fruit = excluded.fruit where insertconflicttest.fruit != 'Cawesh';
MERGE INTO target t USING source AS s ON t.tid = s.sid WHEN MATCHED AND t.balance > s.delta THEN UPDATE SET balance = t.balance - s.delta WHEN MATCHED THEN DELETE;
SELECT * FROM J1_TBL AS tx NATURAL JOIN J2_TBL AS ty;
SELECT * FROM tenk1 a, tenk1 b WHERE a.unique1 = b.unique2 AND a.thousand = 1 FOR UPDATE OF a;
SELECT ten, sum(four) FILTER (WHERE four > 1) OVER (PARTITION BY ten ORDER BY four ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM tenk1 WHERE unique2 < 10;
select x, y from generate_series(1,3) x, lateral (select x * 2 as y) ss;
CREATE TEMP TABLE foo (f1 int, f2 int) ON COMMIT DELETE ROWS;
create function sql_is_distinct_from(anyelement, anyelement) returns boolean language sql as 'select $1 is distinct from $2 limit 1';
CREATE FUNCTION add_em(a int, b int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a + b; END;
DECLARE foo1 SCROLL CURSOR FOR SELECT * FROM tenk1 ORDER BY unique2;
FETCH 2 in foo1;
CLOSE foo1;
TABLE int8_tbl;
