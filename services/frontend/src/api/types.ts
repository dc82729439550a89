// Shapes of the services' JSON, as documented in the team's shared API contract.

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'bearer';
  expires_in: number;
}

export interface User {
  id: string;
  username: string;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Conversation {
  id: string;
  title: string;
  created_at: string;
}

export type MessageRole = 'user' | 'assistant';
export type MessageStatus = 'completed' | 'pending' | 'failed';

export interface Message {
  id: string;
  conversation_id: string;
  role: MessageRole;
  content: string;
  status: MessageStatus;
  created_at: string;
  /** The model that wrote an assistant reply; `local-...` is ai's demo provider. */
  model?: string | null;
  /** Why the reply is not there (yet): "AI service unreachable", ... */
  failure?: string | null;
}

export interface SentMessage {
  message: Message;
  reply: Message;
}

export interface StoredFile {
  id: string;
  name: string;
  size: number;
  content_type: string;
  sha256: string;
  created_at: string;
}

export interface UserStats {
  user_id: string;
  total_messages: number;
  per_day: { day: string; count: number }[];
  active_conversations: number;
}
