// A node-postgres client run by the end-to-end tests: connects through
// gatehouse with the token as password (PG* environment variables) and uses
// the simple protocol, parameterised (extended) queries and a transaction.
const { Client } = require('pg');

async function main() {
  const c = new Client();
  await c.connect();
  await c.query('create temp table n (v int)');
  await c.query('begin');
  for (const v of [1, 2, 3]) {
    await c.query('insert into n values ($1)', [v]);
  }
  await c.query('commit');
  const r = await c.query({ text: 'select count(*)::int as rows, sum(v)::int as sum from n where v > $1', values: [0] });
  let denied = '';
  try {
    await c.query('select * from no_such_table');
  } catch (e) {
    denied = e.code;
  }
  await c.end();
  console.log(`OK rows=${r.rows[0].rows} sum=${r.rows[0].sum} missing=${denied}`);
}

main().catch((e) => { console.error('FAIL', e.message, e.code || ''); process.exit(1); });
