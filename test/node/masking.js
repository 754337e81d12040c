// A node-postgres client that reads a masked table through gatehouse (PG*
// environment variables, the token as password) and prints what it got as
// JSON, for test/e2e TestNodePgMasking. node-postgres asks for text-format
// results: a query without parameters goes through the simple protocol,
// one with parameters through the extended protocol.
const { Client } = require('pg');

async function main() {
  const c = new Client();
  await c.connect();
  const cols = 'id, name, email, card_number, notes';
  const simple = await c.query(`select ${cols} from customers order by id`);
  const extended = await c.query({ text: `select ${cols} from customers where id > $1 order by id`, values: [0] });
  await c.end();
  console.log(JSON.stringify({ simple: simple.rows, extended: extended.rows }));
}

main().catch((e) => { console.error('FAIL', e.message, e.code || ''); process.exit(1); });
