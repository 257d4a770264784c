// Rebilly's SDK against postroom: files.attach / getAllAttachments / getAttachment /
// updateAttachment / detach / detachAndDelete, a message attaching a link, and
// serviceCredentials.update of an SMTP credential (host, port, auth, status), with a real send
// through the test's SMTP server when POSTROOM_SMTP_PORT is given.
import { check, client, expectStatus } from './lib.mjs';

const api = client();

async function upload(name, text) {
  const file = await api.files.upload({
    fileObject: { name, file: Buffer.from(text).toString('base64') },
  });
  check(file.fields.id.startsWith('file_'), `upload answered ${JSON.stringify(file.fields)}`);
  return file.fields;
}

async function draft(attachments = []) {
  const message = await api.emailMessages.create({
    data: {
      from: 'sdk@example.com',
      to: ['someone@example.com'],
      subject: 'attachments from the SDK',
      text: 'text',
      html: '<p>html</p>',
      attachments,
    },
  });
  return message.fields;
}

// files.attach: a file linked to an email message.
const file = await upload('contract.txt', 'the signed contract\n');
const message = await draft();
const attached = await api.files.attach({
  data: { fileId: file.id, relatedType: 'email-message', relatedId: message.id },
});
const link = attached.fields;
check(attached.response.status === 201, `attach answered ${attached.response.status}`);
check(link.id.startsWith('att_'), `attachment id ${link.id}`);
check(link.fileId === file.id && link.relatedId === message.id, 'attach kept the ids');
check(link.name === 'contract.txt', `the link is named after its file: ${link.name}`);

// Rebilly's other related types name objects postroom does not have.
try {
  await api.files.attach({ data: { fileId: file.id, relatedType: 'customer', relatedId: 'cus_1' } });
  check(false, 'a customer link was accepted');
} catch (error) {
  check(error.status === 422, `a customer link answered ${error.status}`);
  const fields = error.response.data.invalidFields.map((f) => f.field);
  check(fields.includes('relatedType'), `the 422 names ${fields}`);
}

// getAllAttachments with a filter, getAttachment, updateAttachment (PUT).
const listed = await api.files.getAllAttachments({ filter: `fileId:${file.id}` });
check(listed.items.length === 1 && listed.items[0].fields.id === link.id, 'listed by fileId');
check(listed.total === 1, `Pagination-Total read by the SDK: ${listed.total}`);
const fetched = await api.files.getAttachment({ id: link.id });
check(fetched.fields.relatedType === 'email-message', 'getAttachment');
const updated = await api.files.updateAttachment({
  id: link.id,
  data: { ...fetched.fields, name: 'Signed contract', description: 'v2' },
});
check(updated.fields.name === 'Signed contract' && updated.fields.description === 'v2', 'PUT');

// A message attaches the link: resourceType "attachment".
const withLink = await draft([{ resourceType: 'attachment', resourceId: link.id }]);
check(withLink.attachments[0].resourceId === link.id, 'a message attaches the link');

// detach removes the link and keeps the file.
await api.files.detach({ id: link.id });
await expectStatus(api.files.getAttachment({ id: link.id }), 404);
check((await api.files.get({ id: file.id })).fields.id === file.id, 'the file stays');

// detachAndDelete: every link of the file, then the file.
const other = await draft();
for (const relatedId of [message.id, other.id]) {
  await api.files.attach({ data: { fileId: file.id, relatedType: 'email-message', relatedId } });
}
await api.files.detachAndDelete({ id: file.id });
await expectStatus(api.files.get({ id: file.id }), 404);
const left = await api.files.getAllAttachments({ filter: `fileId:${file.id}` });
check(left.items.length === 0, `links left after detachAndDelete: ${left.items.length}`);

// serviceCredentials.update of an SMTP credential: host, port, auth (a rotated password), status.
const created = await api.serviceCredentials.create({
  type: 'smtp',
  data: {
    type: 'smtp',
    host: 'smtp.example.com',
    port: 587,
    encryption: 'tls',
    auth: { type: 'plain', username: 'mailer', password: 'old-password' },
  },
});
const credential = created.fields;
const changed = await api.serviceCredentials.update({
  type: 'smtp',
  id: credential.id,
  data: {
    type: 'smtp',
    host: 'mail.example.com',
    port: 2525,
    encryption: 'none',
    auth: { type: 'login', username: 'mailer2', password: 'new-password' },
  },
});
check(changed.fields.host === 'mail.example.com' && changed.fields.port === 2525, 'host, port');
check(changed.fields.auth.type === 'login' && changed.fields.auth.username === 'mailer2', 'auth');
check(!JSON.stringify(changed.fields).includes('password'), 'no password in the answer');
const inactive = await api.serviceCredentials.update({
  type: 'smtp',
  id: credential.id,
  data: { type: 'smtp', status: 'inactive' },
});
check(inactive.fields.status === 'inactive', 'status inactive');

try {
  await api.serviceCredentials.update({ type: 'smtp', id: credential.id, data: { port: 0 } });
  check(false, 'port 0 was accepted');
} catch (error) {
  const fields = error.response.data.invalidFields.map((f) => f.field);
  check(error.status === 422 && fields.includes('port'), `a bad port: ${error.status} ${fields}`);
}

await api.serviceCredentials.update({
  type: 'smtp',
  id: credential.id,
  data: { type: 'smtp', status: 'deactivated' },
});
await expectStatus(
  api.serviceCredentials.update({
    type: 'smtp',
    id: credential.id,
    data: { type: 'smtp', status: 'active' },
  }),
  422,
);

// A real send: a credential pointed at the test's SMTP server by an update, a message
// attaching a link, sent with the file.
const smtpPort = process.env.POSTROOM_SMTP_PORT;
if (smtpPort) {
  const smtp = await api.serviceCredentials.create({
    type: 'smtp',
    data: { type: 'smtp', host: 'smtp.example.com' },
  });
  await api.serviceCredentials.update({
    type: 'smtp',
    id: smtp.fields.id,
    data: { type: 'smtp', host: '127.0.0.1', port: Number(smtpPort), encryption: 'none' },
  });
  const report = await upload('report.txt', 'quarterly report\n');
  const holder = await draft();
  const reportLink = await api.files.attach({
    data: { fileId: report.id, relatedType: 'email-message', relatedId: holder.id },
  });
  const sent = await api.emailMessages.create({
    data: {
      from: 'sdk@example.com',
      to: ['someone@example.com'],
      subject: 'with a linked file',
      text: 'text',
      html: '<p>html</p>',
      status: 'outbox',
      credentialHash: smtp.fields.id,
      attachments: [{ resourceType: 'attachment', resourceId: reportLink.fields.id }],
    },
  });
  let status = sent.fields.status;
  for (let i = 0; i < 240 && status === 'outbox'; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    status = (await api.emailMessages.get({ id: sent.fields.id })).fields.status;
  }
  const final = (await api.emailMessages.get({ id: sent.fields.id })).fields;
  check(status === 'sent', `the message ended ${status}: ${final.responseBody}`);
}

console.log('attachments and credentials: ok');
