package client

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/graftlb/graftlb/protocol"
)

// TopicModule is the reserved module of topics: a session subscribes with
// the calls TopicModule.Topic.Subscribe(topic) and Unsubscribe(topic), and
// a topic event arrives with Module TopicModule, Type the topic and Name
// the event's name.
const TopicModule = protocol.TopicModule

// MaxTopicLen is the longest topic name, in bytes.
const MaxTopicLen = protocol.MaxStringLen

const topicType = protocol.TopicType

// Subscribe subscribes the session to topic (1 to MaxTopicLen bytes of
// UTF-8): the events published to it reach the session's handlers and
// streams like its other events (Event.Topic tells them apart). The proxy
// or gateway the connection ends at answers it. Delivery is best effort and
// at most once. A subscription lasts until Unsubscribe, until the session
// is lost, or while the connection stays up: after a reconnect
// (Options.AutoReconnect) the client subscribes again by itself.
func (s *Session) Subscribe(ctx context.Context, topic string) error {
	if err := s.topicCall(ctx, "Subscribe", topic); err != nil {
		return err
	}
	s.mu.Lock()
	if s.lost.Load() == nil {
		if s.topics == nil {
			s.topics = make(map[string]struct{})
		}
		s.topics[topic] = struct{}{}
	}
	s.mu.Unlock()
	return nil
}

// Unsubscribe ends the session's subscription to topic. Unsubscribing
// from a topic the session is not subscribed to is not an error.
func (s *Session) Unsubscribe(ctx context.Context, topic string) error {
	s.mu.Lock()
	delete(s.topics, topic)
	s.mu.Unlock()
	return s.topicCall(ctx, "Unsubscribe", topic)
}

func (s *Session) topicCall(ctx context.Context, method, topic string) error {
	if len(topic) == 0 || len(topic) > MaxTopicLen || !utf8.ValidString(topic) {
		return fmt.Errorf("%w: topic must be 1 to %d bytes of UTF-8, got %d bytes", ErrBadTarget, MaxTopicLen, len(topic))
	}
	r := Request{Target: protocol.Target{Module: TopicModule, Type: topicType, Method: method}, Args: []any{topic}}
	_, err := s.do(ctx, r, true)
	return err
}

// resubscribe renews the subscriptions of every session of the connection
// after a reconnect.
func (c *Conn) resubscribe() {
	defer c.wg.Done()
	c.mu.Lock()
	sessions := make([]*Session, 0, len(c.sessions))
	for _, s := range c.sessions {
		sessions = append(sessions, s)
	}
	c.mu.Unlock()
	for _, s := range sessions {
		s.mu.Lock()
		topics := make([]string, 0, len(s.topics))
		for t := range s.topics {
			topics = append(topics, t)
		}
		s.mu.Unlock()
		for _, t := range topics {
			ctx, cancel := context.WithTimeout(c.cbCtx, c.opts.DialTimeout)
			err := s.topicCall(ctx, "Subscribe", t)
			cancel()
			if err != nil {
				c.opts.Logger.Warn().Err(err).Stringer("session", s.id).Str("topic", t).Msg("subscribing again after a reconnect failed")
			}
		}
	}
}
