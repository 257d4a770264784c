// Rebilly's SDK against postroom: blocklists create (POST, and PUT with an id) / getAll / get /
// delete, a duplicate refused, the value kept lower-cased.
import { check, client, expectStatus } from './lib.mjs';

const api = client();

const created = await api.blocklists.create({
  data: { type: 'email', value: 'Bounced@Example.com' },
});
check(created.response.status === 201, `create answered ${created.response.status}`);
const entry = created.fields;
check(entry.id.startsWith('blkl_'), `an id of its own: ${entry.id}`);
check(entry.value === 'bounced@example.com', `kept lower-cased: ${entry.value}`);
check(entry.source === 'manual-blocklists', `source: ${entry.source}`);

const withId = await api.blocklists.create({
  id: 'blkl_sdk-domain',
  data: { type: 'email-domain', value: 'example.org', expirationTime: '2030-01-01T00:00:00Z' },
});
check(withId.fields.id === 'blkl_sdk-domain', 'created with the id given (PUT)');
check(withId.fields.expirationTime === '2030-01-01T00:00:00Z', 'expirationTime kept');

const listed = await api.blocklists.getAll({ filter: 'type:email-domain' });
check(listed.items.length === 1 && listed.total === 1, `listed by type: ${listed.items.length}`);
check(listed.items[0].fields.id === 'blkl_sdk-domain', 'the email-domain entry is listed');
const everything = await api.blocklists.getAll({ sort: '-createdTime' });
check(everything.total === 2, `both listed: ${everything.total}`);

const fetched = await api.blocklists.get({ id: entry.id });
check(fetched.fields.value === 'bounced@example.com', 'blocklists.get');

await expectStatus(
  api.blocklists.create({ data: { type: 'email', value: 'bounced@example.com' } }),
  409,
);
await expectStatus(api.blocklists.create({ data: { type: 'ip-address', value: '10.0.0.1' } }), 422);

await api.blocklists.delete({ id: entry.id });
await expectStatus(api.blocklists.get({ id: entry.id }), 404);

console.log('blocklists: ok');
