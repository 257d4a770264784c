// Rebilly's SDK against postroom: organizations.getAll / get (how an SDK user finds the id to
// pass as organizationId) and apiKeys create / getAll / get / update / delete.
import { check, client, expectStatus } from './lib.mjs';

const api = client();
const organizationId = process.env.POSTROOM_ORGANIZATION_ID;

const organizations = await api.organizations.getAll();
check(organizations.items.length === 1, `organizations listed: ${organizations.items.length}`);
check(organizations.items[0].fields.id === organizationId, 'the list holds the key\'s organization');
const organization = await api.organizations.get({ id: organizationId });
check(organization.fields.id === organizationId, 'organizations.get');
check(typeof organization.fields.name === 'string', 'an organization has a name');
await expectStatus(api.organizations.get({ id: 'org_01JD0000000000000000000000' }), 404);

const created = await api.apiKeys.create({ data: { description: 'made by the SDK' } });
const key = created.fields;
check(created.response.status === 201, `create answered ${created.response.status}`);
check(key.id.startsWith('key_') && key.secretKey, 'the secret is shown on creation');

// The new key works on its own, and reaches the same organization.
const asNewKey = client({ apiKey: key.secretKey });
const seen = await asNewKey.organizations.getAll();
check(seen.items[0].fields.id === organizationId, 'the new key reaches the organization');

const listed = await api.apiKeys.getAll({ filter: `id:${key.id}` });
check(listed.items.length === 1 && listed.total === 1, `listed by id: ${listed.items.length}`);
check(listed.items[0].fields.secretKey === undefined, 'a list never shows a secret');
const fetched = await api.apiKeys.get({ id: key.id });
check(fetched.fields.description === 'made by the SDK', 'apiKeys.get');
check(fetched.fields.secretKey === undefined, 'get never shows the secret');

const updated = await api.apiKeys.update({
  id: key.id,
  data: { ...fetched.fields, description: 'renamed by the SDK' },
});
check(updated.fields.description === 'renamed by the SDK', 'apiKeys.update');

await api.apiKeys.delete({ id: key.id });
await expectStatus(api.apiKeys.get({ id: key.id }), 404);
await expectStatus(asNewKey.organizations.getAll(), 401);

console.log('api keys and organizations: ok');
