"""Calico 3 resources (etcdv3 datastore mode) turned into the v1 keys the BIRD templates read.

- :mod:`.selector`: Calico's label selector language;
- :mod:`.resources`: Node, BGPPeer, BGPConfiguration and IPPool JSON as typed values;
- :mod:`.peerings`: the v1 peer keys a BGPPeer stands for, and how they are resolved;
- :mod:`.view`: the whole v1 view, kept up to date resource by resource.

:class:`confpy.stores.calico.CalicoStore` serves that view through the Store protocol.
The rules are those of Calico's own confd (its calico backend and libcalico-go's update
processors), written anew here.
"""
