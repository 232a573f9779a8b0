/** The worker's workflowsPath: every workflow Clover registers. */
export { migrationWorkflow } from './migration';
export { userMigrationWorkflow } from './user-migration';
export { rollbackWorkflow } from './rollback';
