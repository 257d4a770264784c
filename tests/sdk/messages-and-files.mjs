// Rebilly's SDK against postroom's core surface: email messages (create, list with a filter,
// get, send a draft, delete), files (upload, get, list, update, download, delete) and an SMTP
// credential that sends for real through the test's SMTP server (POSTROOM_SMTP_PORT).
import { check, client, expectStatus } from './lib.mjs';

const api = client();
const message = {
  from: 'sdk@example.com',
  to: ['someone@example.com'],
  subject: 'from the SDK',
  text: 'plain text',
  html: '<p>html</p>',
};

// Messages: a draft, listed, fetched, deleted.
const draft = await api.emailMessages.create({ data: message });
check(draft.response.status === 201, `create answered ${draft.response.status}`);
check(draft.fields.status === 'draft', `a new message is a draft: ${draft.fields.status}`);
const listed = await api.emailMessages.getAll({ filter: 'status:draft', limit: 5 });
check(listed.items.some((m) => m.fields.id === draft.fields.id), 'the draft is listed');
check(listed.total >= 1 && listed.limit === 5, `Pagination-* read: ${listed.total}, ${listed.limit}`);
const fetched = await api.emailMessages.get({ id: draft.fields.id });
check(fetched.fields.subject === 'from the SDK', 'emailMessages.get');
await api.emailMessages.delete({ id: draft.fields.id });
await expectStatus(api.emailMessages.get({ id: draft.fields.id }), 404);

// A bad message is a 422 naming the field.
try {
  await api.emailMessages.create({ data: { ...message, to: ['not an address'] } });
  check(false, 'a bad address was accepted');
} catch (error) {
  check(error.status === 422, `a bad address answered ${error.status}`);
  const fields = error.response.data.invalidFields.map((f) => f.field);
  check(fields.some((f) => f.startsWith('to')), `the 422 names ${fields}`);
}

// Files: upload, get, list, update, download, delete.
const upload = await api.files.upload({
  fileObject: { name: 'notes.txt', file: Buffer.from('hello from the SDK\n').toString('base64') },
});
const file = upload.fields;
check(file.id.startsWith('file_') && file.size === 19, `upload: ${JSON.stringify(file)}`);
check((await api.files.get({ id: file.id })).fields.name === 'notes.txt', 'files.get');
const files = await api.files.getAll({ filter: `id:${file.id}` });
check(files.items.length === 1, 'files.getAll by id');
const renamed = await api.files.update({ id: file.id, data: { ...file, description: 'renamed' } });
check(renamed.fields.description === 'renamed', 'files.update');
const downloaded = await api.files.download({ id: file.id });
const bytes = Buffer.from(downloaded.data ?? downloaded.response?.data ?? []);
check(bytes.toString() === 'hello from the SDK\n', `download: ${bytes.length} bytes`);

// A real send: an SMTP credential, a draft attaching the file, sent with emailMessages.send.
const smtpPort = process.env.POSTROOM_SMTP_PORT;
check(smtpPort, 'the harness gives an SMTP port');
const credential = await api.serviceCredentials.create({
  type: 'smtp',
  data: { type: 'smtp', host: '127.0.0.1', port: Number(smtpPort), encryption: 'none' },
});
check(credential.fields.id.startsWith('crd_'), 'serviceCredentials.create');
const withFile = await api.emailMessages.create({
  data: {
    ...message,
    subject: 'sent by the SDK',
    credentialHash: credential.fields.id,
    attachments: [{ resourceType: 'file', resourceId: file.id }],
  },
});
await api.emailMessages.send({ id: withFile.fields.id });
let sent = (await api.emailMessages.get({ id: withFile.fields.id })).fields;
for (let i = 0; i < 240 && sent.status === 'outbox'; i += 1) {
  await new Promise((resolve) => setTimeout(resolve, 250));
  sent = (await api.emailMessages.get({ id: withFile.fields.id })).fields;
}
check(sent.status === 'sent', `the message ended ${sent.status}: ${sent.responseBody}`);
await expectStatus(api.files.delete({ id: file.id }), 204);

console.log('messages and files: ok');
