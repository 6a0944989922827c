/** The variable through which tests/run.ts hands the running local stack to every test file. */
export const TEST_STACK_ENV = 'CELLO_TEST_STACK';
