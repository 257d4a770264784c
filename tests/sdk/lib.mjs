// What every SDK script shares: Rebilly's client configured for the postroom under test
// (tests/sdk/test_sdk.py passes it in the environment), and checks that stop the script with a
// non-zero exit on the first failure.
import RebillyAPI from 'rebilly-js-sdk';

export function client({ apiKey = process.env.POSTROOM_API_KEY } = {}) {
  const url = process.env.POSTROOM_URL;
  return RebillyAPI({
    apiKey,
    organizationId: process.env.POSTROOM_ORGANIZATION_ID,
    urls: { live: url, sandbox: url },
    timeout: 30000,
  });
}

export function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}

// The status of an answer, whether the SDK resolved it or threw it as an error.
export async function expectStatus(promise, status) {
  try {
    const answer = await promise;
    check(answer.response.status === status, `expected ${status}, got ${answer.response.status}`);
  } catch (error) {
    if (error.message?.startsWith('check failed')) {
      throw error;
    }
    check(error.status === status, `expected ${status}, got ${error.status} ${error.message}`);
  }
}
