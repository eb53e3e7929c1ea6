export { freePort, freePorts } from '../../src/util/net.js';
