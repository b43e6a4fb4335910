"""The GraphQL documents the Shopify connector sends (Admin API 2025-01; stores.md).

One order read carries everything either side needs: its lines, its address, its fulfilment
orders (the line item ids a fulfilment is made of) and its fulfilments with tracking, so the
seller side reads nothing per order beyond the listing.
"""

from __future__ import annotations

ORDER_FIELDS = """
fragment OrderFields on Order {
  id name createdAt updatedAt cancelledAt closed displayFulfillmentStatus sourceIdentifier
  shippingAddress { name company address1 address2 city provinceCode zip countryCodeV2 phone }
  lineItems(first: 250) { nodes { id sku name quantity } }
  fulfillmentOrders(first: 20) {
    nodes { id status lineItems(first: 250) { nodes { id remainingQuantity totalQuantity
      lineItem { id sku } } } }
  }
  fulfillments(first: 50) {
    id status createdAt updatedAt
    trackingInfo(first: 10) { company number url }
    fulfillmentLineItems(first: 250) { nodes { quantity lineItem { id sku } } }
  }
}
"""

ORDERS = ORDER_FIELDS + """
query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { ...OrderFields }
  }
}
"""

ORDER = ORDER_FIELDS + """
query Order($id: ID!) { order(id: $id) { ...OrderFields } }
"""

ORDER_CREATE = """
mutation OrderCreate($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) {
  orderCreate(order: $order, options: $options) {
    order { id name }
    userErrors { field message code }
  }
}
"""

ORDER_CANCEL = """
mutation OrderCancel($orderId: ID!) {
  orderCancel(orderId: $orderId, reason: OTHER, refund: false, restock: true,
              notifyCustomer: false) {
    job { id }
    orderCancelUserErrors { field message code }
  }
}
"""

FULFILLMENT_CREATE = """
mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}
"""

FULFILLMENT_CANCEL = """
mutation FulfillmentCancel($id: ID!) {
  fulfillmentCancel(id: $id) {
    fulfillment { id status }
    userErrors { field message }
  }
}
"""


def updated_between(since: str, until: str) -> str:
    """The orders search for "updated in [since, until]": Shopify's search syntax for it is
    UNCONFIRMED in stores.md, so the range is also applied to what comes back."""
    return f"updated_at:>='{since}' AND updated_at:<='{until}'"
