"""``brug deploy render``: what a Kubernetes deployment of Brug derives from the welfare
directory and the client registry, as a Helm values file for ``deploy/helm/brug``.

- Strimzi ``KafkaTopic`` specs: the topics of ``contracts.topics.all_topics`` with their
  retention (``strimzi.py``);
- Strimzi ``KafkaUser`` specs (SCRAM-SHA-512, ``simple`` authorization): the ACL plan of
  ``adapters.kafka_acls`` rendered as Strimzi ACL rules, so the rules exist once;
- the consumer groups KEDA scales on, and the directory itself (a ConfigMap).
"""
