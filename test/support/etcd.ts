export {
  startEtcd,
  type EtcdCluster,
  type EtcdMember,
  type StartEtcdOptions,
} from '../../src/util/etcd-server.js';
